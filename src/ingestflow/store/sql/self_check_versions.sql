-- For the embedded self-check's advice: the server, and the pgvector it would install.
SELECT current_setting('server_version'),
       (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')
