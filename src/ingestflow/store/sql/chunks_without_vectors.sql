-- Chunks of these documents that have no vector in the space yet, in document order.
SELECT c.id, c.document_id, c.text, c.token_count
FROM chunks c
WHERE c.document_id = ANY(%(ids)s)
  AND NOT EXISTS (
      SELECT 1 FROM embeddings e WHERE e.chunk_id = c.id AND e.space_id = %(space_id)s)
ORDER BY array_position(%(ids)s, c.document_id), c.ordinal
