-- The tenant's complete current documents chunked by another rule or size than this one,
-- with their parsed text and the newest version number of their source; those with a newer
-- version in flight are left out (that version is chunked by this rule anyway).
SELECT d.id, d.source_name, t.markdown, t.pages, t.title,
       (SELECT max(n.version) FROM documents n WHERE n.tenant = d.tenant AND n.source_name = d.source_name) AS latest
FROM documents d
JOIN document_texts t ON t.document_id = d.id
WHERE d.tenant = %(tenant)s AND d.is_current AND d.stage = 'complete'
  AND d.chunking IS DISTINCT FROM %(chunking)s::jsonb
  AND NOT EXISTS (SELECT 1 FROM documents n
                  WHERE n.tenant = d.tenant AND n.source_name = d.source_name AND n.version > d.version
                    AND n.stage NOT IN ('failed', 'superseded'))
ORDER BY d.source_name
