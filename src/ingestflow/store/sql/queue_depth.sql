-- Queue depth and age of the oldest runnable job, for one tenant or (NULL) all of them:
-- only queued jobs are read (the jobs_runnable index), never the done ones.
SELECT count(*) FILTER (WHERE j.state = 'ready' AND j.next_attempt_at <= now()) AS runnable,
       count(*) FILTER (WHERE j.state = 'ready' AND j.next_attempt_at > now()) AS waiting,
       count(*) FILTER (WHERE j.state = 'running') AS running,
       coalesce(extract(epoch FROM now() - min(j.next_attempt_at)
                FILTER (WHERE j.state = 'ready' AND j.next_attempt_at <= now())), 0)::float8
           AS oldest_runnable_seconds
FROM jobs j
WHERE j.state IN ('ready', 'running')
  AND (%(tenant)s::text IS NULL
       OR EXISTS (SELECT 1 FROM documents d WHERE d.id = j.document_id AND d.tenant = %(tenant)s))
