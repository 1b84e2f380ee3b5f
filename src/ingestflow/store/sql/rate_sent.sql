-- Count the request from when its answer came back (see RateLimiter.sent).
UPDATE rate_events SET at = clock_timestamp() WHERE id = %(slot)s
