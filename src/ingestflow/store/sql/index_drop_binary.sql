-- Drop a space's binary HNSW index: invalid (a build that died half-way), replaced by a
-- rebuild with other parameters, or by the halfvec kind. A template: {space_id} is a
-- validated integer.
DROP INDEX CONCURRENTLY IF EXISTS embeddings_binary_space_{space_id}
