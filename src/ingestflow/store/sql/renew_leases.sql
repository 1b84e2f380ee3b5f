-- The fence of every stage transaction, for one job or a batch: renews the leases still
-- held and returns them; a job missing from the result belongs to another worker now. A
-- transaction that writes results (progress) ends the jobs' deferral streaks.
UPDATE jobs
SET lease_until = now() + make_interval(secs => %(lease_seconds)s), updated_at = now(),
    deferred_since = CASE WHEN %(progress)s THEN NULL ELSE deferred_since END
WHERE id = ANY(%(job_ids)s) AND owner = %(owner)s AND state = 'running'
RETURNING id, deferred_since, now()
