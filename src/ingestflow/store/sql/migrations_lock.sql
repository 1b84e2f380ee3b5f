-- One migrator at a time, across processes (a session lock: migrations commit one by one).
SELECT pg_advisory_lock(%(key)s)
