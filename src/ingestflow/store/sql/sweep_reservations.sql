-- Reservations nobody will settle: the job's worker lost its lease or died (the lease
-- expired), or, for calls outside a job (search), older than any call can take. The
-- provider may have billed them, so they count at their estimate (outcome 'abandoned');
-- a worker that was only slow corrects the row when it settles after all.
UPDATE ledger l
SET state = 'settled', outcome = 'abandoned', settled_at = now()
WHERE l.state = 'reserved'
  AND CASE WHEN l.job_id IS NULL
           THEN l.created_at < now() - make_interval(secs => %(jobless_after_seconds)s)
           ELSE NOT EXISTS (
               SELECT 1 FROM jobs j
               WHERE j.id = l.job_id AND j.owner = l.owner AND j.state = 'running'
                 AND j.lease_until > now())
      END
RETURNING l.id
