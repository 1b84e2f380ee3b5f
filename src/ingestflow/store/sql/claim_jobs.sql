-- Take up to `limit` runnable jobs, oldest first: ready and due, or running with an expired
-- lease (their worker died), stopping before their documents' bytes pass `max_bytes` (the
-- first is taken whatever its size when `at_least_one`). One lease per job, written in the
-- same statement; SKIP LOCKED lets many workers claim concurrently without blocking.
-- Candidates locked but not taken are free again when this statement's transaction ends.
WITH candidates AS (
    SELECT j.id, j.next_attempt_at, d.size_bytes
    FROM jobs j
    JOIN documents d ON d.id = j.document_id
    -- A running job's next_attempt_at is past (it was due when claimed): one index range
    -- on jobs_runnable serves both cases, however many jobs wait deferred.
    WHERE j.next_attempt_at <= now()
      AND (j.state = 'ready' OR (j.state = 'running' AND j.lease_until < now()))
    ORDER BY j.next_attempt_at, j.id
    FOR UPDATE OF j SKIP LOCKED
    LIMIT %(limit)s
), chosen AS (
    SELECT id FROM (
        SELECT id, row_number() OVER w AS n, sum(size_bytes) OVER w AS bytes
        FROM candidates
        WINDOW w AS (ORDER BY next_attempt_at, id)
    ) running
    WHERE (n = 1 AND %(at_least_one)s) OR bytes <= %(max_bytes)s
)
-- ANY(ARRAY(...)): one index probe per job, whatever the planner believes the queue holds
-- (a join here would loop over the batch for every row of it when statistics lag).
UPDATE jobs j
SET state = 'running', owner = %(owner)s,
    lease_until = now() + make_interval(secs => %(lease_seconds)s),
    attempts = j.attempts + 1, updated_at = now()
WHERE j.id = ANY(ARRAY(SELECT id FROM chosen))
RETURNING j.id, j.document_id, j.attempts, j.task, j.batch_api,
          (SELECT d.size_bytes FROM documents d WHERE d.id = j.document_id)
