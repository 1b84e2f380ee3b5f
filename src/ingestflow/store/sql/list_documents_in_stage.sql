-- A page of a tenant's documents in one stage (superseded: the older versions), newest
-- first; keyset pagination on (created_at, id). An index range of documents_tenant_stage,
-- however many documents of the tenant are in other stages (a statement of its own: a
-- stage chosen by a parameter inside one statement hid the index from a generic plan).
SELECT d.id, d.source_name, d.version, d.mime, d.size_bytes, d.sha256, d.stage, d.is_current,
       d.degraded, d.error_code, d.created_at, d.updated_at,
       (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS chunks
FROM documents d
WHERE d.tenant = %(tenant)s AND d.stage = %(stage)s
  AND (%(after_created)s::timestamptz IS NULL
       OR (d.created_at, d.id) < (%(after_created)s::timestamptz, %(after_id)s::uuid))
ORDER BY d.created_at DESC, d.id DESC
LIMIT %(limit)s
