-- The chunks of these documents counted in (%(added)s: becoming current) or out
-- (%(removed)s: no longer current) of their tenants' word counts, into slot %(slot)s, in
-- the caller's transaction. FOR SHARE: a rebuild of search vectors in another language
-- (rebuild_search_vectors.sql) skips these chunks until this transaction ends, and one
-- that locked them first is waited for and its vectors read, so a chunk is counted in the
-- configuration it is indexed in.
WITH changed AS MATERIALIZED (
    SELECT c.tenant, c.search_config, c.search_vector, s.sign
    FROM (SELECT unnest(%(added)s::uuid[]) AS document_id, 1 AS sign
          UNION ALL
          SELECT unnest(%(removed)s::uuid[]), -1) s
    JOIN chunks c ON c.document_id = s.document_id
    FOR SHARE OF c
)
SELECT count_chunk_words(array_agg(tenant), array_agg(search_config), array_agg(search_vector), array_agg(sign),
                         %(slot)s)
FROM changed
