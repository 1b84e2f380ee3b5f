-- Back to the queue for later, each job with its own delay and reason; a deferral gives
-- back the attempt it was charged and starts (or continues) the deferral streak that
-- MAX_DEFER_SECONDS bounds. The jobs are found by key (ANY), and the owner comes in per
-- row: compared with a constant, the planner expected one owned job and rescanned the
-- arrays for each (0.8 s for 2,048 jobs; 17 ms this way).
UPDATE jobs j
SET state = 'ready', owner = NULL, lease_until = NULL,
    next_attempt_at = now() + make_interval(secs => r.delay_seconds),
    attempts = CASE WHEN r.deferred THEN j.attempts - 1 ELSE j.attempts END,
    deferred_reason = CASE WHEN r.deferred THEN r.reason ELSE NULL END,
    deferred_since = CASE WHEN r.deferred THEN coalesce(j.deferred_since, now()) ELSE NULL END,
    last_error = r.reason, updated_at = now()
FROM unnest(%(job_ids)s::bigint[], %(owners)s::text[], %(delays)s::float8[], %(reasons)s::text[],
            %(deferred)s::bool[]) AS r(job_id, owner, delay_seconds, reason, deferred)
WHERE j.id = ANY(%(job_ids)s::bigint[]) AND j.id = r.job_id AND j.owner = r.owner
