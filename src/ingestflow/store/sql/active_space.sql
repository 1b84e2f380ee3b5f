-- The tenant's searched space, with what it is (null row: the tenant has none yet).
SELECT s.id, s.provider, s.model, s.dimensions
FROM active_spaces a JOIN embedding_spaces s ON s.id = a.space_id
WHERE a.tenant = %(tenant)s
