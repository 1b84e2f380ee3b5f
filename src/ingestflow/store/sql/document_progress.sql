-- Stage, chunk and token totals and job state for a set of a tenant's documents (CLI
-- progress and summary), with what each cost (as ledger_document_cost counts it).
SELECT d.id, d.source_name, d.version, d.stage, d.error_code, d.error_message, d.parser,
       d.degraded, j.state AS job_state, j.next_attempt_at, j.deferred_reason, j.attempts,
       (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS chunks,
       (SELECT coalesce(sum(c.token_count), 0) FROM chunks c WHERE c.document_id = d.id) AS tokens,
       (SELECT coalesce(sum(s.cost_usd), 0) FROM ledger_shares s JOIN ledger l ON l.id = s.ledger_id
        WHERE s.document_id = d.id AND l.state <> 'released' AND l.tenant = d.tenant) AS cost_usd
FROM documents d
LEFT JOIN jobs j ON j.document_id = d.id
WHERE d.id = ANY(%(ids)s) AND d.tenant = %(tenant)s
ORDER BY d.source_name
