-- Graceful shutdown: hand the job back untouched for another worker to take at once.
UPDATE jobs
SET state = 'ready', owner = NULL, lease_until = NULL, attempts = attempts - 1,
    next_attempt_at = now(), updated_at = now()
WHERE id = %(job_id)s AND owner = %(owner)s
RETURNING id
