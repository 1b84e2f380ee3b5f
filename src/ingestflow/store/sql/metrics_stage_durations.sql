-- Stage timings recorded by the pipeline in its stage_done events.
SELECT stage, count(*) AS runs, coalesce(sum((detail->>'seconds')::float8), 0) AS seconds
FROM events
WHERE kind = 'stage_done' AND detail ? 'seconds'
GROUP BY stage
