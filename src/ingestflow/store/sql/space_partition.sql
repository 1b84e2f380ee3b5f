-- A space's partition of embeddings, created in the transaction that creates the space
-- (vectors.ensure_space). A template: {space_id} is a validated integer. Its name is what
-- index_create_*.sql and truncate_space.sql name.
CREATE TABLE IF NOT EXISTS embeddings_space_{space_id} PARTITION OF embeddings FOR VALUES IN ({space_id})
