-- Same bytes already in this tenant (under any name) and not replaced by a newer version.
SELECT id, version, sha256, stage
FROM documents
WHERE tenant = %(tenant)s AND sha256 = %(sha256)s AND superseded_at IS NULL
ORDER BY created_at
LIMIT 1
