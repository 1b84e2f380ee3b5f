SELECT * FROM document_texts WHERE document_id = %(document_id)s
