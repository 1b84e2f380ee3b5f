-- Serializes a tenant's admissions (count its documents in the pipeline, then add one)
-- until commit; the prefix keeps this lock apart from other advisory locks.
SELECT pg_advisory_xact_lock(hashtextextended('tenant-jobs:' || %(tenant)s, 0))
