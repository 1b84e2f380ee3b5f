INSERT INTO rate_state (service, blocked_until)
VALUES (%(service)s, clock_timestamp() + make_interval(secs => %(seconds)s))
ON CONFLICT (service) DO UPDATE
SET blocked_until = greatest(rate_state.blocked_until, EXCLUDED.blocked_until)
