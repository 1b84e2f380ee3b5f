UPDATE documents SET parser = %(parser)s WHERE id = %(document_id)s
