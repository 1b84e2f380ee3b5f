-- One source (tenant + name) at a time, for version numbering and the version swap.
-- Locks are taken in one fixed order, so two transactions locking overlapping sets
-- cannot deadlock. Tenant names never hold '/', so each key is unambiguous.
SELECT pg_advisory_xact_lock(hashtextextended('source:' || s.tenant || '/' || s.source_name, 0))
FROM (SELECT DISTINCT tenant, source_name
      FROM unnest(%(tenants)s::text[], %(names)s::text[]) AS x(tenant, source_name)
      ORDER BY tenant, source_name) s
