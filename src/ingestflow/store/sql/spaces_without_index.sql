-- Spaces whose HNSW index of the kind they need (binary from %(binary_min)s dimensions up,
-- else halfvec) is missing (valid IS NULL) or left invalid by a failed build.
SELECT s.id, s.dimensions, s.dimensions >= %(binary_min)s AS binary, i.indisvalid AS valid
FROM embedding_spaces s
LEFT JOIN pg_class c ON c.relname = CASE WHEN s.dimensions >= %(binary_min)s THEN 'embeddings_binary_space_'
                                         ELSE 'embeddings_hnsw_space_' END || s.id
LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE i.indisvalid IS DISTINCT FROM true
ORDER BY s.id
