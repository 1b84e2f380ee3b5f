-- A model change: the tenant's current documents with a chunk lacking a vector in the new
-- space get their job (done since they completed) back as a 'reembed'. Documents in
-- flight are left alone: their own run embeds them into the configured space; so are those
-- chunked by another rule or size: they are re-chunked, which embeds them too.
UPDATE jobs j
SET task = 'reembed', batch_api = %(batch_api)s, state = 'ready', owner = NULL, lease_until = NULL,
    attempts = 0, next_attempt_at = now(), deferred_reason = NULL, deferred_since = NULL, last_error = NULL,
    updated_at = now()
FROM documents d
WHERE d.id = j.document_id AND d.tenant = %(tenant)s AND d.is_current AND d.stage = 'complete'
  AND d.chunking = %(chunking)s::jsonb
  AND j.state IN ('done', 'failed')
  AND EXISTS (
      SELECT 1 FROM chunks c
      WHERE c.document_id = d.id
        AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.chunk_id = c.id AND e.space_id = %(space_id)s))
RETURNING j.document_id
