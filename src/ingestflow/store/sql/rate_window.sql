-- Requests in the sliding 60 s window (oldest first), and any provider-imposed pause.
SELECT extract(epoch FROM (at - clock_timestamp())) AS age, tokens
FROM rate_events
WHERE service = %(service)s AND at > clock_timestamp() - interval '60 seconds'
ORDER BY at
