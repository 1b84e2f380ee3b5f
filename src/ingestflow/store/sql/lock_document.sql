-- Lock a document (of one tenant, or of any when tenant is NULL) before changing its stage.
SELECT id, stage, correlation_id
FROM documents
WHERE id = %(document_id)s AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
FOR UPDATE
