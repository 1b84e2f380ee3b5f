SELECT id, source_name, version, error_stage, error_code, error_message, updated_at
FROM documents
WHERE tenant = %(tenant)s AND stage = 'failed' AND superseded_at IS NULL
ORDER BY updated_at DESC
LIMIT %(limit)s
