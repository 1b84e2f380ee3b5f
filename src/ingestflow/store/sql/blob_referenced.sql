-- Whether any document of any tenant still uses these bytes (blobs are shared by hash).
SELECT EXISTS (SELECT 1 FROM documents WHERE sha256 = %(sha256)s)
