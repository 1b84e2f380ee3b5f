INSERT INTO api_keys (tenant, key_hash, prefix)
VALUES (%(tenant)s, %(key_hash)s, %(prefix)s)
