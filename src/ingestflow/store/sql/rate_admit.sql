-- Count one admitted request in the window; its id is the slot re-stamped when it is sent.
INSERT INTO rate_events (service, tokens) VALUES (%(service)s, %(tokens)s)
RETURNING id
