-- One source (tenant + name) at a time: version numbering and the version swap. Tenant
-- names never hold '/', so the key is unambiguous.
SELECT pg_advisory_xact_lock(hashtextextended('source:' || %(tenant)s || '/' || %(source_name)s, 0))
