-- Provider calls by service, model and outcome (one ledger row per attempt); units and
-- cost count only what was billed (released reservations never were). From the tallies
-- the ledger's writes keep (migration 0022).
SELECT service, model, unit, outcome, sum(calls)::bigint AS calls, sum(units) AS units,
       sum(cost_usd)::float8 AS cost_usd
FROM ledger_tallies
GROUP BY 1, 2, 3, 4
HAVING sum(calls) <> 0
