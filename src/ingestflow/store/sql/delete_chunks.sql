DELETE FROM chunks WHERE document_id = %(document_id)s
