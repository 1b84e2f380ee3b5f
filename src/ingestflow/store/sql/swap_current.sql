-- Retire every older version of these versions' sources (set_current.sql then makes
-- them the searchable ones: the unique index on current versions is checked row by row),
-- whatever its stage: a version still in flight is cancelled and its job ended, so no
-- worker spends another call on it (its next lease fence fails). Runs in the caller's
-- transaction, under the source locks, so searches see old or new, never both. Older
-- versions are found by one probe per target of the (tenant, source_name, version) index.
WITH target AS (
    SELECT id, tenant, source_name, version FROM documents WHERE id = ANY(%(ids)s)
), older AS (
    SELECT o.id, t.id AS by_id
    FROM target t
    CROSS JOIN LATERAL (
        SELECT id FROM documents o
        WHERE o.tenant = t.tenant AND o.source_name = t.source_name AND o.version < t.version
          AND o.stage <> 'superseded'
    ) o
), retired AS (
    UPDATE documents d
    SET is_current = false, superseded_at = now(), stage = 'superseded', updated_at = now()
    WHERE d.id = ANY(ARRAY(SELECT id FROM older))
    RETURNING d.id, d.correlation_id
), ended AS (
    UPDATE jobs j
    SET state = 'done', owner = NULL, lease_until = NULL, deferred_reason = NULL,
        deferred_since = NULL, last_error = 'superseded by a newer version', updated_at = now()
    WHERE j.document_id = ANY(ARRAY(SELECT id FROM retired)) AND j.state IN ('ready', 'running')
)
SELECT r.id, r.correlation_id, o.by_id FROM retired r JOIN older o ON o.id = r.id
