UPDATE embedding_batches SET provider_batch_id = %(provider_batch_id)s, status = %(status)s, polled_at = now()
WHERE id = %(id)s
