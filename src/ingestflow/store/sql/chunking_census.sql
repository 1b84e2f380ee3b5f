-- Current documents chunked by another rule or size than this one, out of all current
-- documents: of one tenant, or of every tenant when tenant is NULL (tallies, migration 0022).
SELECT coalesce(sum(n) FILTER (WHERE chunking IS DISTINCT FROM %(chunking)s::jsonb), 0)::bigint AS stale,
       coalesce(sum(n), 0)::bigint AS current
FROM document_tallies
WHERE current AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
