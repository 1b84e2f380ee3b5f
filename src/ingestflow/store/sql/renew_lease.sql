-- Also the fence of every stage transaction: no row means another worker owns the job.
-- A transaction that writes results (progress) ends any deferral streak.
UPDATE jobs
SET lease_until = now() + make_interval(secs => %(lease_seconds)s), updated_at = now(),
    deferred_since = CASE WHEN %(progress)s THEN NULL ELSE deferred_since END
WHERE id = %(job_id)s AND owner = %(owner)s AND state = 'running'
RETURNING deferred_since, now()
