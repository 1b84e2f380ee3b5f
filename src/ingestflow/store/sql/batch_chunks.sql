-- A batch's chunk map, line by line, each line's inputs in order.
SELECT custom_id, chunk_id, document_id, tokens FROM embedding_batch_chunks
WHERE batch_id = %(id)s ORDER BY custom_id, position
