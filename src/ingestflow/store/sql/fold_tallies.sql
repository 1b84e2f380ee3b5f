-- Sum each tally's rows into one row per key (store/tallies.py). Rows appended by writes
-- that commit meanwhile are not in this statement's snapshot: they stay, and count once.
-- A ready job's minute that has passed joins the others before it (-infinity): runnable
-- now, as they are, whatever happens later.
WITH docs AS (
    DELETE FROM document_tallies RETURNING *
), docs_folded AS (
    INSERT INTO document_tallies (tenant, stage, current, chunking, n)
    SELECT tenant, stage, current, chunking, sum(n) FROM docs GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
), queued AS (
    DELETE FROM job_tallies RETURNING *
), queued_folded AS (
    INSERT INTO job_tallies (tenant, state, due, n)
    SELECT tenant, state,
           CASE WHEN due < date_bin('1 minute', now(), TIMESTAMPTZ 'epoch') THEN '-infinity' ELSE due END, sum(n)
    FROM queued GROUP BY 1, 2, 3 HAVING sum(n) <> 0
), times AS (
    DELETE FROM stage_time_tallies RETURNING *
), times_folded AS (
    INSERT INTO stage_time_tallies (stage, runs, seconds)
    SELECT stage, sum(runs), sum(seconds) FROM times GROUP BY 1 HAVING sum(runs) <> 0
), done AS (
    DELETE FROM throughput_tallies RETURNING *
), done_folded AS (  -- the dashboard shows the last hour; a day is kept
    INSERT INTO throughput_tallies (tenant, minute, completed, chunks, failed)
    SELECT tenant, minute, sum(completed), sum(chunks), sum(failed)
    FROM done WHERE minute >= now() - interval '1 day' GROUP BY 1, 2
), calls AS (
    DELETE FROM ledger_tallies RETURNING *
), calls_folded AS (
    INSERT INTO ledger_tallies (service, model, unit, outcome, calls, units, cost_usd)
    SELECT service, model, unit, outcome, sum(calls), sum(units), sum(cost_usd)
    FROM calls GROUP BY 1, 2, 3, 4 HAVING sum(calls) <> 0
)
SELECT (SELECT count(*) FROM docs) + (SELECT count(*) FROM queued) + (SELECT count(*) FROM times)
       + (SELECT count(*) FROM done) + (SELECT count(*) FROM calls) AS folded
