-- Degraded documents (embedded by a fallback) go back to 'chunked' so that a worker
-- embeds them with the real model; they stay current, hence searchable, meanwhile.
UPDATE documents
SET stage = 'chunked', updated_at = now()
WHERE degraded AND stage = 'complete'
RETURNING id, correlation_id
