UPDATE embedding_batches
SET state = 'closed', status = %(status)s, embedded = %(embedded)s, error = %(error)s, closed_at = now()
WHERE id = %(id)s AND state = 'open'
