-- What index maintenance weighs for the space the queue fills (vectors.build_indexes): its
-- vectors, and the chunks a queued document brings, from the planner's statistics, which
-- workers keep fresh during loads (statistics.py). Counting a million vectors every
-- INDEX_CHECK_SECONDS would read gigabytes. Never analyzed (-1): 0 vectors, 1 chunk.
SELECT coalesce(greatest((SELECT reltuples FROM pg_class WHERE relname = 'embeddings_space_' || %(space_id)s::int), 0),
                0)::bigint AS vectors,
       coalesce(greatest((SELECT reltuples FROM pg_class WHERE relname = 'chunks' AND relkind = 'r')
                         / nullif((SELECT greatest(reltuples, 0) FROM pg_class
                                   WHERE relname = 'documents' AND relkind = 'r'), 0), 1), 1)::float8
           AS chunks_per_document
