SELECT pg_advisory_unlock(hashtextextended('ingestflow-index', 0))
