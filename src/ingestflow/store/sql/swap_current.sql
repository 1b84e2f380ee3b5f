-- Make this version the searchable one and retire the others of the same source, in
-- the caller's transaction so searches see either the old or the new version.
WITH target AS (
    SELECT tenant, source_name FROM documents WHERE id = %(document_id)s
), retired AS (
    UPDATE documents d
    SET is_current = false, superseded_at = now(), updated_at = now()
    FROM target
    WHERE d.tenant = target.tenant AND d.source_name = target.source_name
      AND d.id <> %(document_id)s AND d.superseded_at IS NULL
      AND d.version < (SELECT version FROM documents WHERE id = %(document_id)s)
    RETURNING d.id
)
SELECT id FROM retired
