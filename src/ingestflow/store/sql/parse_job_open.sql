-- The document's parse job still waiting on the provider, if any, with its age.
SELECT id, provider_job_id, state, error, extract(epoch FROM now() - submitted_at) AS age_seconds
FROM parse_jobs
WHERE document_id = %(document_id)s AND state IN ('submitted', 'failed')
ORDER BY submitted_at DESC
LIMIT 1
