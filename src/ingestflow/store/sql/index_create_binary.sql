-- A space's HNSW index (on its partition) over its vectors' sign bits (pgvector binary_quantize,
-- Hamming distance): 1 bit a dimension instead of 16, so the graph is 8x smaller, cheaper
-- to build and to insert into; search.sql re-ranks what it finds by the halfvec vectors.
-- A template: {space_id} and {dims} are filled in from validated integers. The name must
-- match spaces_without_index.sql and search_prepare.sql.
CREATE INDEX CONCURRENTLY IF NOT EXISTS embeddings_binary_space_{space_id} ON embeddings_space_{space_id}
USING hnsw ((binary_quantize(embedding::halfvec({dims}))::bit({dims})) bit_hamming_ops)
