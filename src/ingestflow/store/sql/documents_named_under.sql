-- The live versions (not superseded) of a tenant's sources whose names start with one of
-- these prefixes, newest version of each source first: what a folder's sync compares
-- with the files found in it.
SELECT DISTINCT ON (d.source_name) d.id, d.source_name, d.version
FROM documents d
WHERE d.tenant = %(tenant)s AND d.superseded_at IS NULL
  AND EXISTS (SELECT 1 FROM unnest(%(prefixes)s::text[]) AS p(prefix) WHERE starts_with(d.source_name, p.prefix))
ORDER BY d.source_name, d.version DESC
