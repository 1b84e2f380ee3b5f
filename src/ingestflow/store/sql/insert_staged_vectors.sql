-- Staged vectors of chunks that still exist and have none in the space yet.
INSERT INTO embeddings (chunk_id, space_id, embedding)
SELECT s.chunk_id, s.space_id, s.embedding FROM staged_embeddings s
WHERE EXISTS (SELECT 1 FROM chunks c WHERE c.id = s.chunk_id)
ON CONFLICT (chunk_id, space_id) DO NOTHING
RETURNING chunk_id
