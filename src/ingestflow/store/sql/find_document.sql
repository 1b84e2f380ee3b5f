-- A document by id, id prefix, or source name (its newest version).
SELECT d.*, j.state AS job_state, j.attempts, j.next_attempt_at, j.deferred_reason, j.last_error,
       (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS chunks,
       (SELECT coalesce(sum(c.token_count), 0) FROM chunks c WHERE c.document_id = d.id) AS tokens
FROM documents d
LEFT JOIN jobs j ON j.document_id = d.id
WHERE d.tenant = %(tenant)s
  AND (d.id::text LIKE %(prefix)s OR d.source_name = %(name)s)
ORDER BY d.version DESC
LIMIT 1
