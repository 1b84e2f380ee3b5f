-- Hand jobs back untouched for any worker to take at once (shutdown, a lost database):
-- the attempt they were charged is given back.
UPDATE jobs
SET state = 'ready', owner = NULL, lease_until = NULL, attempts = attempts - 1,
    next_attempt_at = now(), updated_at = now()
WHERE id = ANY(%(job_ids)s) AND owner = %(owner)s
