DELETE FROM blobs WHERE sha256 = %(sha256)s
