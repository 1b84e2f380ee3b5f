-- Copy vectors of identical chunk text (any earlier version) in the same space, so an
-- edited document only pays for the chunks whose text changed. Only the document's own
-- tenant's chunks count: reuse must not tell one tenant what another holds.
-- Returns how many vectors each document got this way.
WITH copied AS (
    INSERT INTO embeddings (chunk_id, space_id, embedding)
    SELECT c.id, %(space_id)s, prior.embedding
    FROM chunks c
    JOIN documents d ON d.id = c.document_id
    CROSS JOIN LATERAL (
        SELECT e.embedding
        FROM chunks c2
        JOIN documents d2 ON d2.id = c2.document_id AND d2.tenant = d.tenant
        JOIN embeddings e ON e.chunk_id = c2.id AND e.space_id = %(space_id)s
        WHERE c2.text_sha256 = c.text_sha256 AND c2.id <> c.id
        LIMIT 1
    ) prior
    WHERE c.document_id = ANY(%(ids)s)
      AND NOT EXISTS (
          SELECT 1 FROM embeddings e2 WHERE e2.chunk_id = c.id AND e2.space_id = %(space_id)s)
    ON CONFLICT DO NOTHING
    RETURNING chunk_id
)
SELECT c.document_id, count(*)::int
FROM copied
JOIN chunks c ON c.id = copied.chunk_id
GROUP BY c.document_id
