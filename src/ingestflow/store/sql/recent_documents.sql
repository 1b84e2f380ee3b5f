SELECT d.id, d.source_name, d.version, d.stage, d.error_code, d.updated_at, j.state AS job_state,
       j.next_attempt_at, j.deferred_reason
FROM documents d
LEFT JOIN jobs j ON j.document_id = d.id
WHERE d.tenant = %(tenant)s AND d.superseded_at IS NULL
ORDER BY d.updated_at DESC
LIMIT %(limit)s
