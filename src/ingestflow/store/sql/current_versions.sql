-- The current version of each of these documents' sources (at most one per source).
SELECT DISTINCT c.id
FROM documents d
JOIN documents c ON c.tenant = d.tenant AND c.source_name = d.source_name AND c.is_current
WHERE d.id = ANY(%(ids)s)
