SELECT (date_trunc('day', created_at, 'UTC'))::date AS day, service,
       sum(cost_usd) AS cost_usd, sum(units) AS units, count(*) AS requests
FROM ledger
WHERE state <> 'released' AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
GROUP BY 1, 2
ORDER BY 1 DESC, 2
LIMIT %(limit)s
