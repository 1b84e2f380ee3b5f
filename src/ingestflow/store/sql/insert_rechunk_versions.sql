-- A new version of each document to re-chunk: the same bytes and parsed text (never parsed,
-- nor paid for, again), at stage 'parsed', so that a worker chunks and embeds it; it
-- replaces the old version once complete, and search answers from the old one meanwhile.
WITH n AS (
    SELECT * FROM unnest(%(old)s::uuid[], %(ids)s::uuid[], %(versions)s::int[], %(correlations)s::uuid[])
                  AS n(old_id, id, version, correlation_id)
), inserted AS (
    INSERT INTO documents (id, tenant, source_name, version, mime, size_bytes, sha256, correlation_id, stage, parser)
    SELECT n.id, d.tenant, d.source_name, n.version, d.mime, d.size_bytes, d.sha256, n.correlation_id, 'parsed',
           d.parser
    FROM n JOIN documents d ON d.id = n.old_id
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
INSERT INTO document_texts (document_id, markdown, pages, parser, title)
SELECT n.id, t.markdown, t.pages, t.parser, t.title
FROM n JOIN document_texts t ON t.document_id = n.old_id
WHERE n.id IN (SELECT id FROM inserted)
RETURNING document_id
