-- Also the fence of every stage transaction: no row means another worker owns the job.
UPDATE jobs
SET lease_until = now() + make_interval(secs => %(lease_seconds)s), updated_at = now()
WHERE id = %(job_id)s AND owner = %(owner)s AND state = 'running'
RETURNING id
