-- A document's vectors in every space but this one (its fallback vectors, after repair).
DELETE FROM embeddings e
USING chunks c
WHERE c.id = e.chunk_id AND c.document_id = %(document_id)s AND e.space_id <> %(space_id)s
