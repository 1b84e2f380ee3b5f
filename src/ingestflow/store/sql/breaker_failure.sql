-- Count a failure; open at the threshold, or at once when the half-open probe failed.
INSERT INTO breakers (service, consecutive_failures) VALUES (%(service)s, 1)
ON CONFLICT (service) DO UPDATE
SET consecutive_failures = breakers.consecutive_failures + 1,
    state = CASE WHEN breakers.state = 'half_open'
                   OR breakers.consecutive_failures + 1 >= %(threshold)s THEN 'open'
                 ELSE breakers.state END,
    opened_at = CASE WHEN breakers.state = 'half_open'
                       OR (breakers.state = 'closed' AND breakers.consecutive_failures + 1 >= %(threshold)s)
                     THEN now() ELSE breakers.opened_at END,
    probe_owner = NULL, probe_until = NULL, updated_at = now()
RETURNING state
