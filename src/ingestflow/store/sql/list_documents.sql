-- A page of a tenant's current and in-flight versions, newest first; keyset pagination on
-- (created_at, id). list_documents_in_stage.sql lists one stage's.
SELECT d.id, d.source_name, d.version, d.mime, d.size_bytes, d.sha256, d.stage, d.is_current,
       d.degraded, d.error_code, d.created_at, d.updated_at,
       (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS chunks
FROM documents d
WHERE d.tenant = %(tenant)s AND d.superseded_at IS NULL
  AND (%(after_created)s::timestamptz IS NULL
       OR (d.created_at, d.id) < (%(after_created)s::timestamptz, %(after_id)s::uuid))
ORDER BY d.created_at DESC, d.id DESC
LIMIT %(limit)s
