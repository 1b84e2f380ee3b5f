-- The tenant of a live key; the token itself is never stored, only its sha256.
SELECT tenant FROM api_keys WHERE key_hash = %(key_hash)s AND revoked_at IS NULL
