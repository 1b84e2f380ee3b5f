-- How many of these documents of the tenant are in each stage (the CLI's progress bars).
SELECT stage, count(*) AS documents FROM documents
WHERE id = ANY(%(ids)s) AND tenant = %(tenant)s
GROUP BY stage
