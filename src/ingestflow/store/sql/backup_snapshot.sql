-- The snapshot pg_dump reads (--snapshot), exported from the backup's own transaction so
-- the dump and the list of stored files it references describe one moment.
SELECT pg_export_snapshot()
