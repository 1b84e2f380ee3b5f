-- The tenant's vectors in one space (an old model's, after the switch; asked for).
DELETE FROM embeddings e
USING chunks c, documents d
WHERE e.space_id = %(space_id)s AND c.id = e.chunk_id AND d.id = c.document_id AND d.tenant = %(tenant)s
