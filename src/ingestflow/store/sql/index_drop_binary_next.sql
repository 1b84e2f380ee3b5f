-- Drop the binary index a build left under its _next name before dying (invalid, or built
-- but not yet renamed): the build starts over. A template: {space_id} is a validated integer.
DROP INDEX CONCURRENTLY IF EXISTS embeddings_binary_space_{space_id}_next
