-- Up to %(limit)s chunks written with another text search configuration, rebuilt in this
-- one (after a change of SEARCH_LANGUAGE). SKIP LOCKED: chunks being replaced are left to
-- their writer, which writes them in the new configuration anyway.
UPDATE chunks c SET search_config = %(config)s::text,
       search_vector = chunk_search_vector(%(config)s::text::regconfig, d.title, d.source_name, c.metadata -> 'heading_path', c.text)
FROM documents d
WHERE d.id = c.document_id AND c.id IN (
    SELECT id FROM chunks WHERE search_config < %(config)s::text OR search_config > %(config)s::text
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
