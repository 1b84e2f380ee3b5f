-- A tenant's open batches and the last closed ones, newest first (status, progress).
SELECT id, provider_batch_id, state, status, inputs, tokens, embedded, error,
       extract(epoch FROM now() - created_at)::float8 AS age_seconds
FROM embedding_batches
WHERE tenant = %(tenant)s AND (state = 'open' OR closed_at > now() - interval '1 day')
ORDER BY created_at DESC
LIMIT %(limit)s
