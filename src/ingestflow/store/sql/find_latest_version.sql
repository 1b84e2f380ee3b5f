SELECT id, version, sha256, stage
FROM documents
WHERE tenant = %(tenant)s AND source_name = %(source_name)s
ORDER BY version DESC
LIMIT 1
