-- Take runnable jobs, oldest first: ready and due, or running with an expired lease (their
-- worker died). One lease per job, written in the same statement; SKIP LOCKED lets many
-- workers claim concurrently without blocking. Candidates locked but not taken are free
-- again when this statement's transaction ends. How many:
-- * a fair share: the runnable jobs over the live workers' slots, rounded up, so that
--   every worker finds work (the count stops at what could change the answer); jobs for
--   the OpenAI Batch API are not shared out: the provider does their work, and each
--   share would cost a batch of its own;
-- * at most `limit`, and stopping before their documents' bytes pass `max_bytes` (the
--   first is taken whatever its size when `at_least_one`);
-- * at most half the batch a crashed job ran in (migration 0019): retried in halves, a job
--   that kills its worker soon runs alone, and only a crash alone counts as an attempt.
WITH slots AS (
    SELECT greatest(1, coalesce(sum(slots), 0)) AS n
    FROM workers
    WHERE heartbeat_at > now() - make_interval(secs => 3 * interval_seconds)
), share AS (
    SELECT least(%(limit)s, count(*) FILTER (WHERE batch_api)
                            + ceil(count(*) FILTER (WHERE NOT batch_api)::numeric / (SELECT n FROM slots)))::int AS n
    FROM (SELECT j.batch_api FROM jobs j
          WHERE j.next_attempt_at <= now()
            AND (j.state = 'ready' OR (j.state = 'running' AND j.lease_until < now()))
          LIMIT %(limit)s::bigint * (SELECT n FROM slots)) runnable
), candidates AS (
    SELECT j.id, j.next_attempt_at, d.size_bytes,
           CASE WHEN j.state = 'running' THEN greatest(1, j.batch_size / 2) ELSE %(limit)s END AS cap
    FROM jobs j
    JOIN documents d ON d.id = j.document_id
    -- A running job's next_attempt_at is past (it was due when claimed): one index range
    -- on jobs_runnable serves both cases, however many jobs wait deferred.
    WHERE j.next_attempt_at <= now()
      AND (j.state = 'ready' OR (j.state = 'running' AND j.lease_until < now()))
    ORDER BY j.next_attempt_at, j.id
    FOR UPDATE OF j SKIP LOCKED
    LIMIT (SELECT n FROM share)
), chosen AS (
    SELECT id FROM (
        SELECT id, row_number() OVER w AS n, sum(size_bytes) OVER w AS bytes, min(cap) OVER w AS cap
        FROM candidates
        WINDOW w AS (ORDER BY next_attempt_at, id)
    ) running
    WHERE n <= cap AND ((n = 1 AND %(at_least_one)s) OR bytes <= %(max_bytes)s)
)
-- ANY(ARRAY(...)): one index probe per job, whatever the planner believes the queue holds
-- (a join here would loop over the batch for every row of it when statistics lag).
UPDATE jobs j
SET state = 'running', owner = %(owner)s,
    lease_until = now() + make_interval(secs => %(lease_seconds)s),
    -- a crash in a shared batch is not the job's: its attempt is given back
    attempts = j.attempts + CASE WHEN j.state = 'running' AND j.batch_size > 1 THEN 0 ELSE 1 END,
    batch_size = cardinality(ARRAY(SELECT id FROM chosen)),  -- until the worker records its whole batch
    updated_at = now()
WHERE j.id = ANY(ARRAY(SELECT id FROM chosen))
RETURNING j.id, j.document_id, j.attempts, j.task, j.batch_api,
          (SELECT d.size_bytes FROM documents d WHERE d.id = j.document_id)
