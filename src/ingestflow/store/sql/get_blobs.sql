SELECT sha256, data FROM blobs WHERE sha256 = ANY(%(keys)s)
