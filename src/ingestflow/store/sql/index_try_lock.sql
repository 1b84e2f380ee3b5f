-- One HNSW index builder at a time (session lock: builds run outside a transaction).
SELECT pg_try_advisory_lock(hashtextextended('ingestflow-index', 0))
