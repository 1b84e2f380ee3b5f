-- A document's latest audit events, newest first (its tenant's only).
SELECT e.kind, e.stage, e.detail, e.created_at
FROM events e
JOIN documents d ON d.id = e.document_id
WHERE e.document_id = %(document_id)s AND d.tenant = %(tenant)s
ORDER BY e.id DESC
LIMIT %(limit)s
