-- Spaces whose HNSW index of the kind they need (binary from %(binary_min)s dimensions up,
-- else halfvec) is missing (valid IS NULL), left invalid by a failed build, or valid but
-- built with other parameters than m %(m)s and ef_construction %(ef_construction)s
-- (hnsw_option: pgvector's defaults for an index built without them).
SELECT s.id, s.dimensions, s.dimensions >= %(binary_min)s AS binary, i.indisvalid AS valid
FROM embedding_spaces s
LEFT JOIN pg_class c ON c.relname = CASE WHEN s.dimensions >= %(binary_min)s THEN 'embeddings_binary_space_'
                                         ELSE 'embeddings_hnsw_space_' END || s.id
LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE i.indisvalid IS DISTINCT FROM true
   OR hnsw_option(c.reloptions, 'm') <> %(m)s
   OR hnsw_option(c.reloptions, 'ef_construction') <> %(ef_construction)s
ORDER BY s.id
