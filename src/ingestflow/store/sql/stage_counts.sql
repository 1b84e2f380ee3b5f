-- A tenant's documents by stage, superseded versions left out, from the tallies the
-- writes keep (migration 0022): the tenant's few tally rows, not its documents.
SELECT stage, sum(n)::bigint AS documents
FROM document_tallies
WHERE tenant = %(tenant)s AND stage <> 'superseded'
GROUP BY stage
HAVING sum(n) <> 0
