UPDATE documents
SET stage = 'queued', error_stage = NULL, error_code = NULL, error_message = NULL,
    correlation_id = %(correlation_id)s, updated_at = now()
WHERE id = %(document_id)s
