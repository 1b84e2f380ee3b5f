INSERT INTO active_spaces (tenant, space_id, since) VALUES (%(tenant)s, %(space_id)s, now())
ON CONFLICT (tenant) DO UPDATE SET space_id = EXCLUDED.space_id, since = now()
WHERE active_spaces.space_id <> EXCLUDED.space_id
RETURNING tenant
