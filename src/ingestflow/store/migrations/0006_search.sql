-- Keyword search beside the vectors: each chunk carries a tsvector of its document's name
-- (weight A), its heading path (B) and its text (D), built with the text search
-- configuration named in search_config (SEARCH_LANGUAGE when it was written). A change
-- of setting makes the worker rebuild the chunks written with another one; search reads
-- only chunks of the configured one, so stems of two languages are never compared.

-- The one definition of a chunk's tsvector, for writes and rebuilds alike. The file
-- extension is dropped from the name (every PDF would match "pdf").
CREATE FUNCTION chunk_search_vector(config regconfig, source_name text, heading_path jsonb, body text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector(config, regexp_replace(regexp_replace(source_name, '\.[[:alnum:]]{1,8}$', ''),
                                                        '[^[:alnum:]]+', ' ', 'g')), 'A')
        || setweight(to_tsvector(config, coalesce(
               (SELECT string_agg(h, ' ') FROM jsonb_array_elements_text(coalesce(heading_path, '[]')) AS h), '')), 'B')
        || to_tsvector(config, body)
$$;

-- A query that matches a chunk holding ANY of the words of a question (after stemming
-- and stop words): an AND of every word finds nothing for most questions, and ranking
-- sorts the chunks that hold more of them first. Lexemes are quoted, never parsed, so
-- tsquery syntax in a question (& | ! ( ) : *) is just text. NULL when no word is left.
-- Words in more than max_share of all chunks are left out: ts_rank_cd weighs every word
-- alike, so a word on every page ("plan" in a handbook) would rank chunks by how often
-- they say it. The shares are those ANALYZE keeps for the column (pg_stats' most common
-- elements), so they cost nothing to maintain.
CREATE FUNCTION any_word_query(config regconfig, question text, max_share real DEFAULT 1)
RETURNS tsquery LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH common AS (
        SELECT most_common_elems::text::text[] AS lexemes, most_common_elem_freqs AS shares
        FROM pg_stats
        WHERE schemaname = current_schema() AND tablename = 'chunks' AND attname = 'search_vector'
    )
    SELECT string_agg('''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''', ' | ')::tsquery
    FROM unnest(tsvector_to_array(to_tsvector(config, question))) AS lexeme
    LEFT JOIN common ON true
    WHERE max_share >= 1 OR coalesce(common.shares[array_position(common.lexemes, lexeme)], 0) <= max_share
$$;

ALTER TABLE chunks ADD COLUMN search_config text;
ALTER TABLE chunks ADD COLUMN search_vector tsvector;
UPDATE chunks c SET search_config = 'english',
       search_vector = chunk_search_vector('english', d.source_name, c.metadata -> 'heading_path', c.text)
FROM documents d WHERE d.id = c.document_id;
ALTER TABLE chunks ALTER COLUMN search_config SET NOT NULL;
ALTER TABLE chunks ALTER COLUMN search_vector SET NOT NULL;
CREATE INDEX chunks_search ON chunks USING gin (search_vector);
-- Finds chunks of another configuration in two index probes (min/max style), not a scan.
CREATE INDEX chunks_search_config ON chunks (search_config);
