-- One admitter per service at a time, until the transaction ends, across every worker.
SELECT pg_advisory_xact_lock(hashtextextended('rate:' || %(service)s, 1))
