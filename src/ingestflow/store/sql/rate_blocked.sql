SELECT greatest(0, extract(epoch FROM (blocked_until - clock_timestamp())))
FROM rate_state WHERE service = %(service)s
