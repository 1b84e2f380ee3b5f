-- Whether the space has a valid HNSW index of either kind (index_create_*.sql's names).
SELECT EXISTS (SELECT FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
               WHERE c.relname IN ('embeddings_hnsw_space_' || %(space_id)s::int,
                                   'embeddings_binary_space_' || %(space_id)s::int)
                 AND i.indisvalid)
