-- Drop a space's halfvec HNSW index: invalid (a build that died half-way), replaced by a
-- rebuild with other parameters, or by the binary kind. A template: {space_id} is a
-- validated integer.
DROP INDEX CONCURRENTLY IF EXISTS embeddings_hnsw_space_{space_id}
