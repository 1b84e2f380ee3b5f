-- A tenant's work per time bucket over the last buckets * width seconds: documents
-- completed, chunks stored and documents failed, from the per-minute tallies the events'
-- writes keep (migration 0022; width is a whole number of minutes). Buckets are aligned on
-- the clock (the last one is the current, partial one) and every one is returned, empty
-- or not. A poll reads at most a row per minute of the window (and per writer since the
-- last fold), however busy the hour was.
WITH win AS (
    SELECT make_interval(secs => %(width)s) AS width,
           date_bin(make_interval(secs => %(width)s), now(), TIMESTAMPTZ 'epoch')
               - (%(buckets)s - 1) * make_interval(secs => %(width)s) AS since
), tally AS (
    SELECT date_bin(win.width, t.minute, TIMESTAMPTZ 'epoch') AS start, sum(t.completed) AS completed,
           sum(t.chunks) AS chunks, sum(t.failed) AS failed
    FROM win JOIN throughput_tallies t ON t.tenant = %(tenant)s AND t.minute >= win.since
    GROUP BY 1
)
SELECT b.start, coalesce(t.completed, 0)::bigint AS completed, coalesce(t.chunks, 0)::bigint AS chunks,
       coalesce(t.failed, 0)::bigint AS failed
FROM win
CROSS JOIN LATERAL generate_series(win.since, win.since + (%(buckets)s - 1) * win.width, win.width) AS b(start)
LEFT JOIN tally t ON t.start = b.start
ORDER BY b.start
