-- For search.sql, in its transaction, before it: the HNSW scan's settings; how many chunks
-- the tenant and filters leave, counted up to %(exact_max)s + 1 only (a bounded read,
-- whatever the tenant's size), which decides between the graph and an exact scan; and
-- which kind of graph the space has.
-- iterative_scan: keep walking the graph until the filters have let k rows through,
-- instead of returning fewer; max_scan_tuples bounds that walk.
WITH graph AS (
    -- Whether the space's graph is the binary kind (index_create_binary.sql), which
    -- search.sql then orders by and re-ranks; else halfvec's, or none (exact).
    -- Its _next name too: a rebuild's, valid between the old index's drop and its rename.
    SELECT EXISTS (SELECT FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
                   WHERE c.relname IN ('embeddings_binary_space_' || %(space_id)s::int,
                                       'embeddings_binary_space_' || %(space_id)s::int || '_next')
                     AND i.indisvalid) AS binary
)
SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
       -- a binary graph must yield the %(prefetch)s candidates it re-ranks; a halfvec one only ef_search
       set_config('hnsw.ef_search', CASE WHEN g.binary THEN greatest(%(ef_search)s, %(prefetch)s)
                                         ELSE %(ef_search)s END::int::text, true),
       set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s::int::text, true),
       CASE WHEN %(dense)s THEN (
           SELECT count(*) FROM (
               SELECT 1
               FROM documents d
               JOIN chunks c ON c.document_id = d.id
               WHERE d.is_current AND d.tenant = %(tenant)s
                 AND (%(source_name)s::text IS NULL OR d.source_name = %(source_name)s)
                 AND (%(document_ids)s::uuid[] IS NULL OR d.id = ANY(%(document_ids)s::uuid[]))
                 AND (%(mime)s::text IS NULL OR d.mime = %(mime)s)
               LIMIT %(exact_max)s + 1
           ) filtered
       ) <= %(exact_max)s END AS exact,
       g.binary
FROM graph g
