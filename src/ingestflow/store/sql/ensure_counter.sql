INSERT INTO spend_counters (service, kind, window_start)
VALUES (%(service)s, %(kind)s, %(window_start)s)
ON CONFLICT DO NOTHING
