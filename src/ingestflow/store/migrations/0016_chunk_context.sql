-- Chunks that carry their context (issue 27). What is embedded and keyword-indexed for a
-- chunk begins with its document's title and its heading path; the chunk's text stays
-- the passage a reader sees. The title is stored once, on the document; the heading path
-- already is on each chunk. What cut a document's chunks is recorded with them, so that a
-- corpus cut by an older rule is said to be, and re-chunked by `ingestflow reembed`.

-- The document's first level-1 heading, else the title its file declares, else its file
-- name (pipeline/chunking.py document_title). NULL: chunked before this migration.
ALTER TABLE documents ADD COLUMN title text;
-- {"rule", "max_tokens", "overlap_tokens"} of the chunking that cut its chunks (NULL: rule
-- 1, before this migration: headings could stand alone, inputs had no context line).
ALTER TABLE documents ADD COLUMN chunking jsonb;
-- The title the parsed file declared in its metadata (PDF, DOCX, HTML), if any.
ALTER TABLE document_texts ADD COLUMN title text;
-- "Is any current document of the tenant cut by another chunking?" in a few index probes
-- (chunking_stale.sql), not a scan of its documents.
CREATE INDEX documents_current_chunking ON documents (tenant, chunking) WHERE is_current;

-- The chunk's tsvector: the document's title and file name (weight A), its heading path
-- (B) and its text (D). The file name stays beside the title: people search by it.
CREATE FUNCTION chunk_search_vector(config regconfig, title text, source_name text, heading_path jsonb, body text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector(config, coalesce(title, '') || ' ' ||
                                 regexp_replace(regexp_replace(source_name, '\.[[:alnum:]]{1,8}$', ''),
                                                '[^[:alnum:]]+', ' ', 'g')), 'A')
        || setweight(to_tsvector(config, coalesce(
               (SELECT string_agg(h, ' ') FROM jsonb_array_elements_text(coalesce(heading_path, '[]')) AS h), '')), 'B')
        || to_tsvector(config, body)
$$;
DROP FUNCTION chunk_search_vector(regconfig, text, jsonb, text);
