-- How many jobs run in this batch: a crash of it is charged to none of them unless it ran
-- one job alone (claim_jobs.sql).
UPDATE jobs SET batch_size = cardinality(%(job_ids)s::bigint[])
WHERE id = ANY(%(job_ids)s) AND owner = %(owner)s
