UPDATE parse_jobs
SET state = %(state)s, error = %(error)s, finished_at = now()
WHERE id = %(id)s AND state IN ('submitted', 'failed')
RETURNING id
