-- Provider calls by service, model and outcome (one ledger row per attempt); units and
-- cost count only what was billed (released reservations never were).
SELECT service, model, unit, coalesce(outcome, state) AS outcome, count(*) AS calls,
       coalesce(sum(units) FILTER (WHERE state <> 'released'), 0) AS units,
       coalesce(sum(cost_usd) FILTER (WHERE state <> 'released'), 0)::float8 AS cost_usd
FROM ledger
GROUP BY 1, 2, 3, 4
