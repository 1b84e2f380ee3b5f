-- One creator of embedding spaces at a time, until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended('ingestflow-space', 0))
