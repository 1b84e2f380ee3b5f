UPDATE ledger
SET state = %(state)s, units = %(units)s, cost_usd = %(cost_usd)s, outcome = %(outcome)s,
    settled_at = now()
WHERE id = %(id)s AND state = 'reserved'
RETURNING id
