-- A callback's parse job with its document, locked for the state change it may cause.
SELECT p.id, p.document_id, p.state, d.stage, d.correlation_id
FROM parse_jobs p JOIN documents d ON d.id = p.document_id
WHERE p.id = %(id)s
FOR UPDATE OF p, d
