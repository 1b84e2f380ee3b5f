SELECT kind, stage, detail, created_at
FROM events
WHERE document_id = %(document_id)s
ORDER BY id DESC
LIMIT %(limit)s
