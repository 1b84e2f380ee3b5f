-- The chunks of these documents counted in (%(added)s: becoming current) or out
-- (%(removed)s: no longer current) of their tenants' word counts, into slot %(slot)s, in
-- the caller's transaction, which holds the documents' locks (current_versions.sql).
SELECT count_chunk_words(array_agg(c.tenant), array_agg(c.search_config), array_agg(c.search_vector),
                         array_agg(s.sign), %(slot)s)
FROM (SELECT unnest(%(added)s::uuid[]) AS document_id, 1 AS sign
      UNION ALL
      SELECT unnest(%(removed)s::uuid[]), -1) s
JOIN chunks c ON c.document_id = s.document_id
