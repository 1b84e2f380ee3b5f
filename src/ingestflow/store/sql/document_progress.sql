-- Stage, chunk and token totals and job state for a set of a tenant's documents (CLI
-- progress and summary).
SELECT d.id, d.source_name, d.version, d.stage, d.error_code, d.error_message, d.parser,
       d.degraded, j.state AS job_state, j.next_attempt_at, j.deferred_reason, j.attempts,
       (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS chunks,
       (SELECT coalesce(sum(c.token_count), 0) FROM chunks c WHERE c.document_id = d.id) AS tokens
FROM documents d
LEFT JOIN jobs j ON j.document_id = d.id
WHERE d.id = ANY(%(ids)s) AND d.tenant = %(tenant)s
ORDER BY d.source_name
