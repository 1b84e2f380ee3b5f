-- Compare-and-set: only moves a document that is still where the caller found it.
UPDATE documents
SET stage = %(to_stage)s, updated_at = now()
WHERE id = %(document_id)s AND stage = ANY(%(from_stages)s)
RETURNING id
