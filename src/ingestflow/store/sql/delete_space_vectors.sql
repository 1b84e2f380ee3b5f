-- These documents' vectors in one space: the fallback's, once the real model has
-- re-embedded them (repair). Vectors in other spaces (an old model's) stay. One probe of
-- the embeddings key per chunk, however big the space.
DELETE FROM embeddings e
WHERE e.space_id = %(space_id)s
  AND e.chunk_id = ANY(ARRAY(SELECT c.id FROM chunks c WHERE c.document_id = ANY(%(ids)s)))
