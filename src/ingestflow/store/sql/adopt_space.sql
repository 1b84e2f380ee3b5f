-- A tenant's first space becomes its active one; a tenant that has one keeps it.
INSERT INTO active_spaces (tenant, space_id)
SELECT unnest(%(tenants)s::text[]), %(space_id)s
ON CONFLICT (tenant) DO NOTHING
