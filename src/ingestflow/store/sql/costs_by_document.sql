-- Spend per document and service, from each paid call's shares (a call that served many
-- documents counts once per document, for that document's part of it).
SELECT d.id, d.source_name, d.version, l.service, sum(s.cost_usd) AS cost_usd,
       sum(s.units) AS units, count(*) AS requests
FROM ledger_shares s
JOIN ledger l ON l.id = s.ledger_id
JOIN documents d ON d.id = s.document_id
WHERE l.state <> 'released' AND (%(tenant)s::text IS NULL OR l.tenant = %(tenant)s)
GROUP BY d.id, d.source_name, d.version, l.service
ORDER BY cost_usd DESC
LIMIT %(limit)s
