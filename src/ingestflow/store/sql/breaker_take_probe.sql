-- After the cool-down, exactly one caller (across all workers) becomes the probe.
UPDATE breakers
SET state = 'half_open', probe_owner = %(owner)s,
    probe_until = now() + make_interval(secs => %(probe_seconds)s), updated_at = now()
WHERE service = %(service)s
  AND ((state = 'open' AND opened_at + make_interval(secs => %(cooldown_seconds)s) <= now())
       OR (state = 'half_open' AND probe_until < now()))
RETURNING service
