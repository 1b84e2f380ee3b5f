-- Worker heartbeats: one row per running worker process (owner: its lease owner name, as
-- on the jobs it claims), rewritten every interval_seconds. A worker is alive while its
-- heartbeat is younger than three intervals: one that was killed simply ages out, one that
-- stops cleanly deletes its row. Rows dead for long are pruned by the live workers.
CREATE TABLE workers (
    owner            text PRIMARY KEY,
    host             text NOT NULL,
    pid              integer NOT NULL,
    slots            integer NOT NULL,
    interval_seconds double precision NOT NULL,
    jobs_done        bigint NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT now(),
    heartbeat_at     timestamptz NOT NULL DEFAULT now()
);
