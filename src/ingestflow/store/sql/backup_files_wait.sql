-- Before a stored file is removed: waits while a backup copies files (backup_files_lock).
SELECT pg_advisory_xact_lock_shared(%(key)s)
