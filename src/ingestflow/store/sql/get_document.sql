SELECT * FROM documents WHERE id = %(document_id)s
