-- The tenant's reembed jobs by state (ready includes those waiting on a batch).
SELECT j.state, count(*) FROM jobs j JOIN documents d ON d.id = j.document_id
WHERE d.tenant = %(tenant)s AND j.task = 'reembed'
GROUP BY j.state
