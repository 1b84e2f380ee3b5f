INSERT INTO ledger (service, model, unit, units, cost_usd, state, tenant, document_id,
                    correlation_id, attempt, job_id, owner)
VALUES (%(service)s, %(model)s, %(unit)s, %(units)s, %(cost_usd)s, 'reserved', %(tenant)s,
        %(document_id)s, %(correlation_id)s, %(attempt)s, %(job_id)s, %(owner)s)
RETURNING id
