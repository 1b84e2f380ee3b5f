-- Make this version the searchable one and retire every older version of the same source,
-- whatever its stage: a version still in flight is cancelled and its job ended, so no
-- worker spends another call on it (its next lease fence fails). Runs in the caller's
-- transaction, under the source lock, so searches see the old version or the new one.
WITH target AS (
    SELECT tenant, source_name, version FROM documents WHERE id = %(document_id)s
), retired AS (
    UPDATE documents d
    SET is_current = false, superseded_at = now(), stage = 'superseded', updated_at = now()
    FROM target
    WHERE d.tenant = target.tenant AND d.source_name = target.source_name
      AND d.version < target.version AND d.stage <> 'superseded'
    RETURNING d.id, d.correlation_id
), ended AS (
    UPDATE jobs j
    SET state = 'done', owner = NULL, lease_until = NULL, deferred_reason = NULL,
        deferred_since = NULL, last_error = 'superseded by a newer version', updated_at = now()
    FROM retired
    WHERE j.document_id = retired.id AND j.state IN ('ready', 'running')
)
SELECT id, correlation_id FROM retired
