-- One folder at a time (two would only wait on each other's rows), released at commit.
SELECT pg_try_advisory_xact_lock(hashtextextended('ingestflow:fold-tallies', 0))
