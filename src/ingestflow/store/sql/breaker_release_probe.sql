-- Back to open (its cool-down already over), so that the next caller becomes the probe.
UPDATE breakers
SET state = 'open', probe_owner = NULL, probe_until = NULL, updated_at = now()
WHERE service = %(service)s AND state = 'half_open' AND probe_owner = %(owner)s
