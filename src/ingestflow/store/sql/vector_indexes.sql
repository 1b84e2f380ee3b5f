-- Each embedding space's HNSW index, for doctor: its name, whether it is valid, its build
-- parameters and size, and the vectors of the space (the planner's estimate, NULL before
-- the partition's first analyze: counting 1M rows takes seconds). shared_buffers to
-- compare: a search walks the graph page by page, and a page outside Postgres's own
-- buffers is a read from the OS cache, slower. A space without an index (exact search) has
-- a row of NULLs after its vectors.
SELECT s.id AS space_id, s.provider, s.model, s.dimensions,
       CASE WHEN p.reltuples >= 0 THEN p.reltuples::bigint END AS vectors,
       x.index, x.valid, x.m, x.ef_construction, x.bytes, b.shared_buffers,
       x.bytes > b.shared_buffers AS outgrows_buffers
FROM embedding_spaces s
CROSS JOIN (SELECT pg_size_bytes(current_setting('shared_buffers')) AS shared_buffers) b
LEFT JOIN pg_class p ON p.relname = 'embeddings_space_' || s.id
LEFT JOIN LATERAL (
    SELECT c.relname::text AS index, i.indisvalid AS valid, pg_relation_size(c.oid) AS bytes,
           hnsw_option(c.reloptions, 'm') AS m, hnsw_option(c.reloptions, 'ef_construction') AS ef_construction
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_am a ON a.oid = c.relam
    WHERE i.indrelid = p.oid AND a.amname = 'hnsw'
) x ON true
ORDER BY s.id, x.index
