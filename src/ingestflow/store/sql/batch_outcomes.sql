-- What became of each input of a closing batch.
UPDATE embedding_batch_chunks
SET outcome = CASE WHEN chunk_id = ANY(%(embedded)s) THEN 'embedded'
                   WHEN chunk_id = ANY(%(failed)s) THEN 'failed'
                   ELSE 'not_run' END
WHERE batch_id = %(id)s
