-- A new checkpointer pid means the server restarted all its processes after a crash.
SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'
