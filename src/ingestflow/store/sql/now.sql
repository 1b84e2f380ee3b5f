-- The database's clock: every worker's budget windows are cut from the same clock.
SELECT now()
