-- Take the oldest runnable job: ready and due, or running with an expired lease (its
-- worker died). SKIP LOCKED lets many workers claim concurrently without blocking.
UPDATE jobs
SET state = 'running', owner = %(owner)s,
    lease_until = now() + make_interval(secs => %(lease_seconds)s),
    attempts = attempts + 1, updated_at = now()
WHERE id = (
    SELECT id FROM jobs
    WHERE (state = 'ready' AND next_attempt_at <= now())
       OR (state = 'running' AND lease_until < now())
    ORDER BY next_attempt_at, id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING id, document_id, attempts
