-- Documents by stage over all tenants, superseded versions left out (tallies, migration 0022).
SELECT stage, sum(n)::bigint AS documents
FROM document_tallies
WHERE stage <> 'superseded'
GROUP BY stage
HAVING sum(n) <> 0
