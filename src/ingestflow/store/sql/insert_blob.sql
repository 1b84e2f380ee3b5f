INSERT INTO blobs (sha256, data) VALUES (%(sha256)s, %(data)s)
ON CONFLICT (sha256) DO NOTHING
