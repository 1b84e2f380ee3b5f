-- Fresh statistics for the columns the worker's queries join and filter on (not the
-- vectors themselves: sampling those would read megabytes for nothing).
ANALYZE documents (id, tenant, stage, is_current, source_name), chunks (id, document_id, text_sha256),
        embeddings (chunk_id, space_id), jobs (id, document_id, state, next_attempt_at, owner)
