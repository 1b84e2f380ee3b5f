INSERT INTO documents (id, tenant, source_name, version, mime, size_bytes, sha256, correlation_id)
VALUES (%(id)s, %(tenant)s, %(source_name)s, %(version)s, %(mime)s, %(size_bytes)s,
        %(sha256)s, %(correlation_id)s)
ON CONFLICT (id) DO NOTHING
