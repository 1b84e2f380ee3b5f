-- The staged chunks with their search vector, in the configured text search configuration,
-- and their document's tenant (the key of vector reuse, with the input's hash).
INSERT INTO chunks (id, document_id, ordinal, text, text_sha256, token_count, metadata, search_config, search_vector,
                    tenant)
SELECT s.id, s.document_id, s.ordinal, s.text, s.text_sha256, s.token_count, s.metadata, %(config)s::text,
       chunk_search_vector(%(config)s::text::regconfig, d.title, d.source_name, s.metadata -> 'heading_path', s.text),
       d.tenant
FROM staged_chunks s JOIN documents d ON d.id = s.document_id
