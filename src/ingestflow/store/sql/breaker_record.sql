-- Record one call's outcome. Opens the breaker after `threshold` consecutive failures, or
-- when at least `min_calls` calls in the current window failed at `rate` or more; a failed
-- half-open probe opens it again; any success closes it.
WITH cur AS (
    SELECT service, state, consecutive_failures,
           (window_start IS NULL OR window_start < now() - make_interval(secs => %(window)s)) AS expired,
           window_start, window_calls, window_failures
    FROM breakers WHERE service = %(service)s
    FOR UPDATE
), counted AS (
    SELECT cur.*,
           CASE WHEN expired THEN now() ELSE window_start END AS w_start,
           CASE WHEN expired THEN 0 ELSE window_calls END + 1 AS w_calls,
           CASE WHEN expired THEN 0 ELSE window_failures END + %(failed)s::int AS w_failures
    FROM cur
), decided AS (
    SELECT counted.*,
           %(failed)s AND (state <> 'closed'
                           OR consecutive_failures + 1 >= %(threshold)s
                           OR (w_calls >= %(min_calls)s AND w_failures >= %(rate)s * w_calls)) AS open_now
    FROM counted
)
UPDATE breakers b
SET window_start = d.w_start, window_calls = d.w_calls, window_failures = d.w_failures,
    consecutive_failures = CASE WHEN %(failed)s THEN d.consecutive_failures + 1 ELSE 0 END,
    state = CASE WHEN d.open_now THEN 'open' ELSE 'closed' END,
    opened_at = CASE WHEN d.open_now AND d.state <> 'open' THEN now()
                     WHEN d.open_now THEN b.opened_at END,
    probe_owner = NULL, probe_until = NULL, updated_at = now()
FROM decided d
WHERE b.service = d.service
RETURNING b.state, d.state AS previous
