-- A finished halfvec build takes the index's own name, once the index it replaces is
-- dropped. A template: {space_id} is a validated integer.
ALTER INDEX embeddings_hnsw_space_{space_id}_next RENAME TO embeddings_hnsw_space_{space_id}
