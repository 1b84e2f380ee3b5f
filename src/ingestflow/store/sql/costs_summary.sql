-- Spend (settled + still reserved) per service for today and this hour (UTC windows).
SELECT service,
       coalesce(sum(cost_usd) FILTER (WHERE created_at >= date_trunc('day', now(), 'UTC')), 0) AS today_usd,
       coalesce(sum(cost_usd) FILTER (WHERE created_at >= date_trunc('hour', now(), 'UTC')), 0) AS hour_usd,
       count(*) FILTER (WHERE created_at >= date_trunc('hour', now(), 'UTC')) AS hour_requests,
       coalesce(sum(units) FILTER (WHERE created_at >= date_trunc('day', now(), 'UTC')), 0) AS today_units
FROM ledger
WHERE state <> 'released' AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
  AND created_at >= date_trunc('day', now(), 'UTC')  -- today's rows only (ledger_created), not the history
GROUP BY service
ORDER BY service
