-- Spaces whose HNSW index of the kind they need (binary from %(binary_min)s dimensions up,
-- else halfvec) is missing (valid IS NULL), left invalid by a failed build, or valid but
-- built with other parameters than m %(m)s and ef_construction %(ef_construction)s (an
-- index built without them has pgvector's defaults, 16 and 64).
SELECT s.id, s.dimensions, s.dimensions >= %(binary_min)s AS binary, i.indisvalid AS valid
FROM embedding_spaces s
LEFT JOIN pg_class c ON c.relname = CASE WHEN s.dimensions >= %(binary_min)s THEN 'embeddings_binary_space_'
                                         ELSE 'embeddings_hnsw_space_' END || s.id
LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE i.indisvalid IS DISTINCT FROM true
   OR coalesce((SELECT option_value FROM pg_options_to_table(c.reloptions) WHERE option_name = 'm'), '16')
      <> %(m)s::int::text
   OR coalesce((SELECT option_value FROM pg_options_to_table(c.reloptions) WHERE option_name = 'ef_construction'),
               '64') <> %(ef_construction)s::int::text
ORDER BY s.id
