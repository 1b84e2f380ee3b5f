SELECT d.id, d.source_name, d.version, l.service, sum(l.cost_usd) AS cost_usd,
       sum(l.units) AS units, count(*) AS requests
FROM ledger l
JOIN documents d ON d.id = l.document_id
WHERE l.state <> 'released' AND (%(tenant)s::text IS NULL OR l.tenant = %(tenant)s)
  AND (%(document_id)s::uuid IS NULL OR d.id = %(document_id)s::uuid)
GROUP BY d.id, d.source_name, d.version, l.service
ORDER BY cost_usd DESC
LIMIT %(limit)s
