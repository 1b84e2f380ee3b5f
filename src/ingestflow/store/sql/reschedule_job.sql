-- Back to the queue for later; a deferral gives back the attempt it was charged and
-- starts (or continues) the deferral streak that MAX_DEFER_SECONDS bounds.
UPDATE jobs
SET state = 'ready', owner = NULL, lease_until = NULL,
    next_attempt_at = now() + make_interval(secs => %(delay_seconds)s),
    attempts = CASE WHEN %(deferred)s THEN attempts - 1 ELSE attempts END,
    deferred_reason = CASE WHEN %(deferred)s THEN %(reason)s ELSE NULL END,
    deferred_since = CASE WHEN %(deferred)s THEN coalesce(deferred_since, now()) ELSE NULL END,
    last_error = %(reason)s, updated_at = now()
WHERE id = %(job_id)s AND owner = %(owner)s
RETURNING id
