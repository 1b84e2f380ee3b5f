-- One document's spend per service (still-reserved calls included, released ones not);
-- a NULL tenant reads any tenant's rows (operators), otherwise only that tenant's.
SELECT service, coalesce(sum(cost_usd), 0) AS cost_usd, coalesce(sum(units), 0) AS units, count(*) AS calls
FROM ledger
WHERE document_id = %(document_id)s AND state <> 'released'
  AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
GROUP BY service
ORDER BY service
