-- Queue depth and age of the oldest runnable job, for one tenant or (NULL) all of them.
SELECT count(*) FILTER (WHERE j.state = 'ready' AND j.next_attempt_at <= now()) AS runnable,
       count(*) FILTER (WHERE j.state = 'ready' AND j.next_attempt_at > now()) AS waiting,
       count(*) FILTER (WHERE j.state = 'running') AS running,
       coalesce(extract(epoch FROM now() - min(j.next_attempt_at)
                FILTER (WHERE j.state = 'ready' AND j.next_attempt_at <= now())), 0)::float8
           AS oldest_runnable_seconds
FROM jobs j
JOIN documents d ON d.id = j.document_id
WHERE %(tenant)s::text IS NULL OR d.tenant = %(tenant)s
