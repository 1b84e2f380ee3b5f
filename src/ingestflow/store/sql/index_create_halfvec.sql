-- A space's HNSW cosine index (on its partition) over halfvec (up to 4,000 dimensions), on the
-- typed cast that search.sql uses. A template: DDL takes no bind parameters, so
-- {space_id} and {dims} are filled in from validated integers, never from user input.
-- The name must match spaces_without_index.sql.
CREATE INDEX CONCURRENTLY IF NOT EXISTS embeddings_hnsw_space_{space_id} ON embeddings_space_{space_id}
USING hnsw ((embedding::halfvec({dims})) halfvec_cosine_ops)
