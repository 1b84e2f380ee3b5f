-- A space's HNSW index (on its partition) over its vectors' sign bits (pgvector binary_quantize,
-- Hamming distance): 1 bit a dimension instead of 16, so the graph is 8x smaller, cheaper
-- to build and to insert into; search.sql re-ranks what it finds by the halfvec vectors.
-- Built under the _next name, then renamed (index_rename_binary.sql), as the halfvec kind.
-- A template: {space_id}, {dims}, {m} and {ef_construction} are filled in from validated
-- integers. The names must match spaces_without_index.sql and search_prepare.sql.
CREATE INDEX CONCURRENTLY embeddings_binary_space_{space_id}_next ON embeddings_space_{space_id}
USING hnsw ((binary_quantize(embedding::halfvec({dims}))::bit({dims})) bit_hamming_ops)
WITH (m = {m}, ef_construction = {ef_construction})
