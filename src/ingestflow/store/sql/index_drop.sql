-- Drop a space's invalid HNSW index (left by a build that died half-way). A template:
-- DDL takes no bind parameters, so {space_id} is filled in from a validated integer,
-- never from user input.
DROP INDEX CONCURRENTLY IF EXISTS embeddings_hnsw_space_{space_id}
