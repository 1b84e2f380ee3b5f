-- Spaces marked as loading that have a valid HNSW index again (a build finished, or a
-- worker died between marking and dropping it) are no longer warming up.
UPDATE embedding_spaces s SET bulk_load_since = NULL
WHERE s.bulk_load_since IS NOT NULL
  AND EXISTS (SELECT FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
              WHERE c.relname IN ('embeddings_hnsw_space_' || s.id, 'embeddings_binary_space_' || s.id)
                AND i.indisvalid)
