-- For each name and content hash to register (under the source locks): the source's
-- newest version, and a live document of the tenant with the same bytes under any name.
SELECT i.n,
       latest.id AS latest_id, latest.version AS latest_version, latest.sha256 AS latest_sha256,
       latest.stage AS latest_stage,
       dup.id AS dup_id, dup.version AS dup_version, dup.stage AS dup_stage
FROM unnest(%(names)s::text[], %(shas)s::text[]) WITH ORDINALITY AS i(source_name, sha256, n)
LEFT JOIN LATERAL (
    SELECT id, version, sha256, stage FROM documents
    WHERE tenant = %(tenant)s AND source_name = i.source_name
    ORDER BY version DESC LIMIT 1
) latest ON true
LEFT JOIN LATERAL (
    SELECT id, version, stage FROM documents
    WHERE tenant = %(tenant)s AND sha256 = i.sha256 AND superseded_at IS NULL
    ORDER BY created_at LIMIT 1
) dup ON true
ORDER BY i.n
