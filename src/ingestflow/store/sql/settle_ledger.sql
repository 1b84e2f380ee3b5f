-- Close a reservation with what was billed (state settled) or give it back (released).
-- A row the sweeper closed as abandoned is corrected too; the caller moves the spend
-- counters by the difference to the amount the row held before.
UPDATE ledger l
SET state = %(state)s, units = %(units)s, cost_usd = %(cost_usd)s, outcome = %(outcome)s,
    settled_at = now()
FROM (SELECT id, cost_usd FROM ledger WHERE id = %(id)s FOR UPDATE) before
WHERE l.id = before.id AND (l.state = 'reserved' OR l.outcome = 'abandoned')
RETURNING before.cost_usd
