-- Fresh statistics for the columns the worker's queries join and filter on (not the
-- vectors themselves: sampling those would read megabytes for nothing), and the chunks'
-- search vectors, whose word shares the planner reads for keyword search. SKIP_LOCKED: a
-- table being indexed CONCURRENTLY (an HNSW build takes minutes) is left for the next
-- turn; waiting for its lock held this transaction open, the build waited for it in
-- turn, and Postgres killed the build as a deadlock (measured at 100k chunks). ANALYZE of
-- the partitioned embeddings analyzes each space's partition too.
ANALYZE (SKIP_LOCKED) documents (id, tenant, stage, is_current, source_name), chunks (id, document_id, tenant, text_sha256, search_vector),
        embeddings (chunk_id, space_id), jobs (id, document_id, tenant, state, next_attempt_at, owner)
