-- A backup copying stored files holds this key alone; a file's removal holds it shared
-- (backup_files_wait), so no file the backup's snapshot references disappears mid-copy.
SELECT pg_advisory_lock(%(key)s)
