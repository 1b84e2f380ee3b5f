UPDATE jobs
SET state = %(state)s, owner = NULL, lease_until = NULL, deferred_reason = NULL,
    deferred_since = NULL, last_error = %(last_error)s, updated_at = now()
WHERE id = ANY(%(job_ids)s) AND owner = %(owner)s
