UPDATE documents
SET stage = 'failed', error_stage = %(error_stage)s, error_code = %(error_code)s,
    error_message = %(error_message)s, updated_at = now()
WHERE id = %(document_id)s
