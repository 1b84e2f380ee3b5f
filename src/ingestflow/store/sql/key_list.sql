SELECT id, tenant, prefix, created_at, revoked_at
FROM api_keys
WHERE %(tenant)s::text IS NULL OR tenant = %(tenant)s
ORDER BY id
