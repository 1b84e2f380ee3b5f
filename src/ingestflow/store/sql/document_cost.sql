SELECT service, coalesce(sum(cost_usd), 0) AS cost_usd, coalesce(sum(units), 0) AS units, count(*) AS calls
FROM ledger
WHERE document_id = %(document_id)s AND state <> 'released'
GROUP BY service
