SELECT pg_try_advisory_xact_lock(hashtextextended('ingestflow-repair', 0))
