-- Replay protection: no row returned means this event id was already accepted.
INSERT INTO webhook_events (event_id, document_id)
VALUES (%(event_id)s, %(document_id)s)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
