-- Whether any current document of the tenant was chunked by another rule or size than
-- this one: index probes of documents_current_chunking. Separate EXISTS, not one with an
-- OR, so that each stays a probe once the statement is prepared (as search_config_stale).
SELECT EXISTS (SELECT 1 FROM documents WHERE tenant = %(tenant)s AND is_current AND chunking < %(chunking)s::jsonb)
    OR EXISTS (SELECT 1 FROM documents WHERE tenant = %(tenant)s AND is_current AND chunking > %(chunking)s::jsonb)
    OR EXISTS (SELECT 1 FROM documents WHERE tenant = %(tenant)s AND is_current AND chunking IS NULL)
