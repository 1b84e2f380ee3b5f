UPDATE documents SET is_current = true, updated_at = now() WHERE id = %(document_id)s
