-- Spaces whose partial HNSW index is missing (valid IS NULL) or left invalid by a failed build.
SELECT s.id, s.dimensions, i.indisvalid AS valid
FROM embedding_spaces s
LEFT JOIN pg_class c ON c.relname = 'embeddings_hnsw_space_' || s.id
LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE i.indisvalid IS DISTINCT FROM true
ORDER BY s.id
