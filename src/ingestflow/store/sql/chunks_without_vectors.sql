SELECT c.id, c.text, c.token_count
FROM chunks c
WHERE c.document_id = %(document_id)s
  AND NOT EXISTS (
      SELECT 1 FROM embeddings e WHERE e.chunk_id = c.id AND e.space_id = %(space_id)s)
ORDER BY c.ordinal
