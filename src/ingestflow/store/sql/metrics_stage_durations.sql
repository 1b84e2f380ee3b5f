-- Stage timings recorded by the pipeline in its stage_done events (tallies, migration 0022).
SELECT stage, sum(runs)::bigint AS runs, sum(seconds) AS seconds
FROM stage_time_tallies
GROUP BY stage
HAVING sum(runs) <> 0
