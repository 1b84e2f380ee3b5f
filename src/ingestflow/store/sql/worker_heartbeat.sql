-- A worker says it is alive (its first heartbeat registers it).
INSERT INTO workers (owner, host, pid, slots, interval_seconds, jobs_done)
VALUES (%(owner)s, %(host)s, %(pid)s, %(slots)s, %(interval_seconds)s, %(jobs_done)s)
ON CONFLICT (owner) DO UPDATE
SET heartbeat_at = now(), jobs_done = EXCLUDED.jobs_done, interval_seconds = EXCLUDED.interval_seconds
