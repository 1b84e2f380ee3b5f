-- The index build's memory, for this session only (the builder's own connection, autocommit:
-- CREATE INDEX CONCURRENTLY runs outside a transaction, so SET LOCAL would not last).
SELECT set_config('maintenance_work_mem', %(memory)s, false)
