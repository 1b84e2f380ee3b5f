-- Up to %(limit)s chunks written with another text search configuration, rebuilt in this
-- one (after a change of SEARCH_LANGUAGE), and those of current documents moved from
-- their old configuration's word counts to this one's (into slot %(slot)s). SKIP LOCKED:
-- chunks being replaced are left to their writer, which writes them in the new
-- configuration anyway, and chunks whose document is being made current or deleted
-- (current_versions.sql locks it) are left for the next turn. The document is locked too,
-- and read as last committed: whether it is current is what the counts hold.
WITH picked AS MATERIALIZED (
    SELECT c.id, c.tenant, c.search_config AS old_config, c.search_vector AS old_vector, d.is_current,
           chunk_search_vector(%(config)s::text::regconfig, d.title, d.source_name, c.metadata -> 'heading_path',
                               c.text) AS vector
    FROM chunks c JOIN documents d ON d.id = c.document_id
    WHERE c.id IN (SELECT id FROM chunks WHERE search_config < %(config)s::text OR search_config > %(config)s::text
                   LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    FOR SHARE OF d SKIP LOCKED
), rebuilt AS (
    UPDATE chunks c SET search_config = %(config)s::text, search_vector = p.vector
    FROM picked p
    WHERE c.id = p.id
    RETURNING c.id
), moved AS (
    SELECT tenant, old_config AS config, old_vector AS vector, -1 AS sign FROM picked WHERE is_current
    UNION ALL
    SELECT tenant, %(config)s::text, vector, 1 FROM picked WHERE is_current
)
SELECT (SELECT count(*) FROM rebuilt),
       (SELECT count_chunk_words(array_agg(tenant), array_agg(config), array_agg(vector), array_agg(sign), %(slot)s)
        FROM moved)
