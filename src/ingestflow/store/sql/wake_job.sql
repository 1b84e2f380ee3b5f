-- A waiting (deferred) job becomes runnable now; a running one is left to its worker.
UPDATE jobs
SET next_attempt_at = now(), deferred_reason = NULL, updated_at = now()
WHERE document_id = %(document_id)s AND state = 'ready'
