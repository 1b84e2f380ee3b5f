-- For doctor: the server's version and the pgvector version installed in this database.
SELECT current_setting('server_version'),
       (SELECT extversion FROM pg_extension WHERE extname = 'vector')
