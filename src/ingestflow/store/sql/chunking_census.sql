-- Current documents chunked by another rule or size than this one, out of all current
-- documents: of one tenant, or of every tenant when tenant is NULL.
SELECT count(*) FILTER (WHERE chunking IS DISTINCT FROM %(chunking)s::jsonb) AS stale, count(*) AS current
FROM documents
WHERE is_current AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
