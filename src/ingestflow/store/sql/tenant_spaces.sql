-- Every space holding vectors of the tenant's current documents, with how many.
SELECT s.id, s.provider, s.model, s.dimensions, count(*) AS vectors
FROM documents d
JOIN chunks c ON c.document_id = d.id
JOIN embeddings e ON e.chunk_id = c.id
JOIN embedding_spaces s ON s.id = e.space_id
WHERE d.tenant = %(tenant)s AND d.is_current
GROUP BY s.id
ORDER BY s.id
