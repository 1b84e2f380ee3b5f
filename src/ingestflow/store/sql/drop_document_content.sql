-- Chunks (and by cascade their vectors) and parsed texts of retired versions.
WITH c AS (DELETE FROM chunks WHERE document_id = ANY(%(ids)s))
DELETE FROM document_texts WHERE document_id = ANY(%(ids)s)
