-- Queue depth and age of the oldest runnable job, for one tenant or (NULL) all of them,
-- without reading the queue: the counts are job_tallies' (migration 0022), where ready
-- jobs are tallied by the minute they are due in. Only the current minute is split by
-- reading jobs: those due later in it (waiting yet) through the queued-jobs index. The
-- oldest runnable job is the first ready entry of an index.
WITH minute AS (
    SELECT date_bin('1 minute', now(), TIMESTAMPTZ 'epoch') AS start
), tally AS (
    SELECT coalesce(sum(t.n) FILTER (WHERE t.state = 'ready' AND t.due <= m.start), 0) AS due_by_now,
           coalesce(sum(t.n) FILTER (WHERE t.state = 'ready' AND t.due > m.start), 0) AS due_later,
           coalesce(sum(t.n) FILTER (WHERE t.state = 'running'), 0) AS running
    FROM minute m LEFT JOIN job_tallies t ON %(tenant)s::text IS NULL OR t.tenant = %(tenant)s::text
), later_this_minute AS (
    SELECT count(*) AS n
    FROM minute m JOIN jobs j
      ON j.next_attempt_at > now() AND j.next_attempt_at < m.start + interval '1 minute'
    WHERE j.state = 'ready' AND (%(tenant)s::text IS NULL OR j.tenant = %(tenant)s::text)
), oldest AS (
    SELECT min(at) AS at FROM (
        (SELECT next_attempt_at AS at FROM jobs
         WHERE %(tenant)s::text IS NULL AND state = 'ready'
           AND next_attempt_at <= now()
         ORDER BY next_attempt_at LIMIT 1)
        UNION ALL
        (SELECT next_attempt_at FROM jobs
         WHERE tenant = %(tenant)s::text AND state = 'ready' AND next_attempt_at <= now()
         ORDER BY next_attempt_at LIMIT 1)
    ) first_due
)
SELECT (t.due_by_now - l.n)::bigint AS runnable, (t.due_later + l.n)::bigint AS waiting,
       t.running::bigint AS running,
       coalesce(extract(epoch FROM now() - o.at), 0)::float8 AS oldest_runnable_seconds
FROM tally t, later_this_minute l, oldest o
