-- Jobs queued or running, counted up to a cap (the Batch API's auto threshold): the
-- runnable index stops the count there, whatever the queue holds.
SELECT count(*) FROM (
    SELECT 1 FROM jobs WHERE state IN ('ready', 'running') LIMIT %(cap)s
) queued
