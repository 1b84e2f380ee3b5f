-- Jobs among the given documents that still have work due now (ready and due, or running).
SELECT count(*)
FROM jobs
WHERE document_id = ANY(%(ids)s)
  AND (state = 'running' OR (state = 'ready' AND next_attempt_at <= now()))
