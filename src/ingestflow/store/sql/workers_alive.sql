-- Workers whose last heartbeat is younger than three of their own intervals, oldest first.
SELECT owner, host, pid, slots, jobs_done, started_at, heartbeat_at
FROM workers
WHERE heartbeat_at > now() - make_interval(secs => 3 * interval_seconds)
ORDER BY started_at, owner
