-- Reservations nobody will settle: their worker holds no live lease any more (it died,
-- or lost its jobs), or, for calls outside a job (search), older than any call can take.
-- A Batch API reservation (owner 'batch:<id>') lives as long as its batch is open.
-- The provider may have billed them, so they count at their estimate (outcome
-- 'abandoned'); a worker that was only slow corrects the row when it settles after all.
UPDATE ledger l
SET state = 'settled', outcome = 'abandoned', settled_at = now()
WHERE l.state = 'reserved'
  AND CASE WHEN l.owner IS NULL
           THEN l.created_at < now() - make_interval(secs => %(jobless_after_seconds)s)
           WHEN l.owner LIKE 'batch:%%'
           THEN l.created_at < now() - make_interval(secs => %(jobless_after_seconds)s)
                AND NOT EXISTS (SELECT 1 FROM embedding_batches b WHERE b.ledger_id = l.id AND b.state = 'open')
           ELSE NOT EXISTS (
               SELECT 1 FROM jobs j
               WHERE j.owner = l.owner AND j.state = 'running' AND j.lease_until > now())
      END
RETURNING l.id
