SELECT pg_try_advisory_xact_lock(hashtextextended('ingestflow:analyze', 0))
