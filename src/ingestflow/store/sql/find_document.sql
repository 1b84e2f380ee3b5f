-- A tenant's document by source name (its newest version first), else by id prefix (no
-- wildcards: starts_with) of at least %(min_prefix)s characters, or id; two rows, so that
-- a prefix naming two documents can be told apart.
SELECT d.*, j.state AS job_state, j.attempts, j.next_attempt_at, j.deferred_reason, j.last_error,
       (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS chunks,
       (SELECT coalesce(sum(c.token_count), 0) FROM chunks c WHERE c.document_id = d.id) AS tokens
FROM documents d
LEFT JOIN jobs j ON j.document_id = d.id
WHERE d.tenant = %(tenant)s
  AND (d.source_name = %(ref)s
       OR (length(%(ref)s) >= %(min_prefix)s AND starts_with(d.id::text, lower(%(ref)s))))
ORDER BY d.source_name = %(ref)s DESC, d.version DESC
LIMIT 2
