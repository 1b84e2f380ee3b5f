-- A tenant's work per time bucket over the last buckets * width seconds, from the audit
-- log: documents completed, chunks stored and documents failed. Buckets are aligned on
-- the clock (the last one is the current, partial one) and every one is returned, empty
-- or not. The kind predicate matches the partial index events_finished_at and the time
-- bound is a constant of the statement, so a poll reads only the window's events (then
-- each one's document by primary key), however long the history.
WITH win AS (
    SELECT make_interval(secs => %(width)s) AS width,
           date_bin(make_interval(secs => %(width)s), now(), TIMESTAMPTZ 'epoch')
               - (%(buckets)s - 1) * make_interval(secs => %(width)s) AS since
), tally AS (
    SELECT date_bin(make_interval(secs => %(width)s), e.created_at, TIMESTAMPTZ 'epoch') AS start,
           count(*) FILTER (WHERE e.kind = 'stage_done' AND e.stage = 'complete') AS completed,
           coalesce(sum((e.detail->>'chunks')::bigint)
                        FILTER (WHERE e.kind = 'stage_done' AND e.stage = 'chunked'), 0) AS chunks,
           count(*) FILTER (WHERE e.kind = 'failed') AS failed
    FROM events e
    JOIN documents d ON d.id = e.document_id
    -- A little more than the buckets cover (the first one is cut by the clock); the
    -- join below drops the surplus.
    WHERE e.kind IN ('stage_done', 'failed') AND d.tenant = %(tenant)s
      AND e.created_at >= now() - %(buckets)s * make_interval(secs => %(width)s)
    GROUP BY 1
)
SELECT b.start, coalesce(t.completed, 0) AS completed, coalesce(t.chunks, 0) AS chunks,
       coalesce(t.failed, 0) AS failed
FROM win
CROSS JOIN LATERAL generate_series(win.since, win.since + (%(buckets)s - 1) * win.width, win.width) AS b(start)
LEFT JOIN tally t ON t.start = b.start
ORDER BY b.start
