-- A page of a tenant's document's chunks in order; keyset pagination on ordinal.
SELECT c.id, c.ordinal, c.text, c.token_count, c.metadata,
       EXISTS (SELECT 1 FROM embeddings e WHERE e.chunk_id = c.id) AS embedded
FROM chunks c
JOIN documents d ON d.id = c.document_id
WHERE c.document_id = %(document_id)s AND d.tenant = %(tenant)s AND c.ordinal > %(after)s
ORDER BY c.ordinal
LIMIT %(limit)s
