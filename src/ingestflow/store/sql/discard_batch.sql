DELETE FROM embedding_batches WHERE id = %(id)s AND provider_batch_id IS NULL
