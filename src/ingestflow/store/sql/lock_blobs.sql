-- The locks of stored contents, until the transaction ends: an upload takes them from
-- writing the bytes to committing the documents that use them, a delete from checking
-- that nothing uses them to removing them, so neither sees the other half-done (bytes
-- are shared by every tenant). One fixed order, so two lockers cannot deadlock.
SELECT pg_advisory_xact_lock(hashtextextended('blob:' || s.sha256, 0))
FROM (SELECT DISTINCT sha256 FROM unnest(%(shas)s::text[]) AS x(sha256) ORDER BY sha256) s
