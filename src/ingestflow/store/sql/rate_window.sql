-- Requests in the sliding window (oldest first): the provider's minute plus a margin
-- for clock offset and transit, so that a request we admit is never early at the provider.
SELECT extract(epoch FROM (at - clock_timestamp())) AS age, tokens
FROM rate_events
WHERE service = %(service)s AND at > clock_timestamp() - make_interval(secs => %(window)s)
ORDER BY at
