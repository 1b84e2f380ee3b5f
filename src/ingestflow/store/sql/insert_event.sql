INSERT INTO events (document_id, correlation_id, kind, stage, detail)
VALUES (%(document_id)s, %(correlation_id)s, %(kind)s, %(stage)s, %(detail)s)
