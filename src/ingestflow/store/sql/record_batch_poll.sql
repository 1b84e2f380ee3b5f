UPDATE embedding_batches SET status = %(status)s, polled_at = now() WHERE id = %(id)s AND state = 'open'
