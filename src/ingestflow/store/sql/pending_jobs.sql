-- Jobs among the given documents that still have work due now (ready and due, or running:
-- a running job's next_attempt_at is past), read through the index of queued jobs.
SELECT count(*)
FROM jobs
WHERE document_id = ANY(%(ids)s) AND state IN ('ready', 'running') AND next_attempt_at <= now()
