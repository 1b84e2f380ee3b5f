INSERT INTO ledger (service, model, unit, units, cost_usd, state, tenant, attempt, owner)
VALUES (%(service)s, %(model)s, %(unit)s, %(units)s, %(cost_usd)s, 'reserved', %(tenant)s,
        %(attempt)s, %(owner)s)
RETURNING id
