-- One job row per document; enqueueing again (retry, repair) makes it runnable now.
INSERT INTO jobs (document_id, tenant, batch_api)
SELECT d.id, d.tenant, %(batch_api)s FROM documents d WHERE d.id = ANY(%(ids)s::uuid[])
ON CONFLICT (document_id) DO UPDATE
SET task = 'ingest', batch_api = EXCLUDED.batch_api, state = 'ready', owner = NULL, lease_until = NULL,
    attempts = 0, next_attempt_at = now(), deferred_reason = NULL, deferred_since = NULL, last_error = NULL,
    updated_at = now()
