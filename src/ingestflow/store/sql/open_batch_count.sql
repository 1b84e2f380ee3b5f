-- How many of the tenant's batches are still open (the partial index on open batches).
SELECT count(*) FROM embedding_batches WHERE tenant = %(tenant)s AND state = 'open'
