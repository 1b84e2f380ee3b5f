-- One document's spend per service, from its shares of the calls that served it
-- (still-reserved calls included, released ones not); a NULL tenant reads any tenant's
-- rows (operators), otherwise only that tenant's.
SELECT l.service, coalesce(sum(s.cost_usd), 0) AS cost_usd, coalesce(sum(s.units), 0) AS units,
       count(*) AS calls
FROM ledger_shares s
JOIN ledger l ON l.id = s.ledger_id
WHERE s.document_id = %(document_id)s AND l.state <> 'released'
  AND (%(tenant)s::text IS NULL OR l.tenant = %(tenant)s)
GROUP BY l.service
ORDER BY l.service
