SELECT stage, count(*) AS documents
FROM documents
WHERE tenant = %(tenant)s AND superseded_at IS NULL
GROUP BY stage
