-- Admitted requests older than two windows can never count again.
DELETE FROM rate_events
WHERE service = %(service)s AND at < clock_timestamp() - interval '120 seconds'
