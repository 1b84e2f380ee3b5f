-- A ledger row's attribution to the documents it served (rewritten when it is settled).
WITH gone AS (DELETE FROM ledger_shares WHERE ledger_id = %(ledger_id)s)
INSERT INTO ledger_shares (ledger_id, document_id, units, cost_usd)
SELECT %(ledger_id)s, * FROM unnest(%(documents)s::uuid[], %(units)s::bigint[], %(costs)s::numeric[])
