-- One document of a tenant with its job and progress (chunks that have a vector).
SELECT d.*, j.state AS job_state, j.attempts, j.next_attempt_at, j.deferred_reason,
       (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS chunks,
       (SELECT count(*) FROM chunks c WHERE c.document_id = d.id
          AND EXISTS (SELECT 1 FROM embeddings e WHERE e.chunk_id = c.id)) AS chunks_embedded,
       (SELECT coalesce(sum(c.token_count), 0) FROM chunks c WHERE c.document_id = d.id) AS tokens
FROM documents d
LEFT JOIN jobs j ON j.document_id = d.id
WHERE d.id = %(document_id)s AND d.tenant = %(tenant)s
