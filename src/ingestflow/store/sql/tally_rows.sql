-- How many rows the tallies hold: a fold is due when reads would sum many.
SELECT (SELECT count(*) FROM document_tallies) + (SELECT count(*) FROM job_tallies)
       + (SELECT count(*) FROM stage_time_tallies) + (SELECT count(*) FROM ledger_tallies)
       + (SELECT count(*) FROM throughput_tallies)
