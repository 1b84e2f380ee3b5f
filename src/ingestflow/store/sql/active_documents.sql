-- Documents of a tenant that still have pipeline work ahead (neither complete nor failed).
SELECT count(*)
FROM documents
WHERE tenant = %(tenant)s AND superseded_at IS NULL AND stage NOT IN ('complete', 'failed')
