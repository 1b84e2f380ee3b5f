-- Cosine search inside one embedding space, with optional filters; the typed cast matches the space's partial HNSW index ({dims} is a validated integer, not user input).
SELECT c.id AS chunk_id, d.id AS document_id, d.source_name, d.version, c.ordinal,
       c.text, c.metadata, 1 - (e.embedding::vector({dims}) <=> %(query)s::vector({dims})) AS score
FROM embeddings e
JOIN chunks c ON c.id = e.chunk_id
JOIN documents d ON d.id = c.document_id
WHERE e.space_id = %(space_id)s AND d.is_current AND d.tenant = %(tenant)s
  AND (%(source_name)s::text IS NULL OR d.source_name = %(source_name)s)
  AND (%(document_ids)s::uuid[] IS NULL OR d.id = ANY(%(document_ids)s::uuid[]))
  AND (%(mime)s::text IS NULL OR d.mime = %(mime)s)
ORDER BY e.embedding::vector({dims}) <=> %(query)s::vector({dims})
LIMIT %(k)s
