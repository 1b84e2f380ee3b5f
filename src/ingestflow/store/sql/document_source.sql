-- The source a tenant's document is a version of.
SELECT source_name FROM documents WHERE id = %(document_id)s AND tenant = %(tenant)s
