UPDATE breakers
SET state = 'closed', consecutive_failures = 0, opened_at = NULL, probe_owner = NULL,
    probe_until = NULL, updated_at = now()
WHERE service = %(service)s AND (state <> 'closed' OR consecutive_failures > 0)
