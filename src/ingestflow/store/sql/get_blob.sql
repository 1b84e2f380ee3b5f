SELECT data FROM blobs WHERE sha256 = %(sha256)s
