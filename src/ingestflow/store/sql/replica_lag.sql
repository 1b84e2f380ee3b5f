-- Whether this server is a standby, and how far its replay trails the primary in seconds:
-- 0 while it has replayed all it received from a live stream; otherwise the age of the
-- last transaction it replayed (NULL, never replayed: unknown, so too far).
SELECT pg_is_in_recovery() AS standby,
       CASE WHEN EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')
                 AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
       END AS lag_seconds
