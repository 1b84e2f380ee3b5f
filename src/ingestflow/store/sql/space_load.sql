-- What index maintenance weighs for the space the queue fills (vectors.build_indexes): its
-- vectors, and the chunks a queued document brings, from the planner's statistics, which
-- workers keep fresh during loads (statistics.py): counting a million vectors every
-- INDEX_CHECK_SECONDS would read gigabytes. Chunks per document are the chunks over the
-- distinct documents they belong to (n_distinct of chunks.document_id, a fraction of the
-- rows when negative), not over all documents: during a load most are not chunked yet.
-- Never analyzed: 0 vectors, 1 chunk a document.
SELECT coalesce(greatest((SELECT reltuples FROM pg_class WHERE relname = 'embeddings_space_' || %(space_id)s::int), 0),
                0)::bigint AS vectors,
       coalesce((SELECT greatest(CASE WHEN s.n_distinct < 0 THEN -1 / s.n_distinct
                                      ELSE c.reltuples / nullif(s.n_distinct, 0) END, 1)
                 FROM pg_class c
                 JOIN pg_stats s ON s.schemaname = c.relnamespace::regnamespace::text
                                AND s.tablename = 'chunks' AND s.attname = 'document_id'
                 WHERE c.relname = 'chunks' AND c.relkind = 'r'), 1)::float8 AS chunks_per_document
