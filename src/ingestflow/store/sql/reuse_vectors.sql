-- Copy vectors of identical chunk text (any earlier version) in the same space, so an
-- edited document only pays for the chunks whose text changed. Only the document's own
-- tenant's chunks count: reuse must not tell one tenant what another holds.
-- Returns how many vectors each document got this way.
-- Reads only the batch's rows and, per chunk, the tenant's copies of its text up to the
-- first one with a vector (chunks_tenant_text_sha): a text shared across tenants is not
-- walked in theirs. OFFSET 0 keeps NOT EXISTS a per-chunk probe (as an anti-join the
-- planner hashed every vector of the space), and ANY(ARRAY(...)) the last step a probe
-- per copied chunk (a join hashed every chunk).
WITH copied AS (
    INSERT INTO embeddings (chunk_id, space_id, embedding)
    SELECT c.id, %(space_id)s, prior.embedding
    FROM (SELECT DISTINCT unnest(%(ids)s::uuid[])) AS batch(document_id)
    JOIN chunks c ON c.document_id = batch.document_id
    CROSS JOIN LATERAL (
        SELECT e.embedding
        FROM chunks c2
        JOIN embeddings e ON e.chunk_id = c2.id AND e.space_id = %(space_id)s
        WHERE c2.tenant = c.tenant AND c2.text_sha256 = c.text_sha256 AND c2.id <> c.id
        LIMIT 1
    ) prior
    WHERE NOT EXISTS (
          SELECT 1 FROM embeddings e2 WHERE e2.chunk_id = c.id AND e2.space_id = %(space_id)s OFFSET 0)
    ON CONFLICT DO NOTHING
    RETURNING chunk_id
)
SELECT c.document_id, count(*)::int
FROM chunks c
WHERE c.id = ANY(ARRAY(SELECT chunk_id FROM copied))
GROUP BY c.document_id
