UPDATE documents SET degraded = %(degraded)s WHERE id = %(document_id)s
