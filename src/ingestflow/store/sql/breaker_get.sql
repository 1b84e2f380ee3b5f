SELECT state, consecutive_failures, opened_at, probe_owner, probe_until, now() AS now
FROM breakers WHERE service = %(service)s
