-- Serialises switches of one tenant's active space (transaction-scoped).
SELECT pg_advisory_xact_lock(hashtextextended('active_space:' || %(tenant)s, 0))
