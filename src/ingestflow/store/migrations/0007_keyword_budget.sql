-- Keyword search ranks every chunk that holds a searched word, so a word found in
-- thousands of chunks is what a search costs (measured: ~30 us a chunk at 100k chunks,
-- 800 ms for a question of common words). any_word_query now also takes a row budget:
-- words are kept rarest first while the chunks they are estimated to match (their shares
-- of pg_stats' most common elements, times the table's rows) stay within max_rows, and
-- the rarest is always kept. Rare words are what keyword search adds to vectors; the
-- common ones rank little and cost the most. A word missing from the most common
-- elements is estimated as Postgres' planner does: half the least common one's share.
DROP FUNCTION any_word_query(regconfig, text, real);

CREATE FUNCTION any_word_query(config regconfig, question text, max_share real DEFAULT 1,
                               max_rows real DEFAULT NULL)
RETURNS tsquery LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH common AS (
        SELECT most_common_elems::text::text[] AS lexemes, most_common_elem_freqs AS shares
        FROM pg_stats
        WHERE schemaname = current_schema() AND tablename = 'chunks' AND attname = 'search_vector'
    ),
    words AS (
        SELECT lexeme, coalesce(common.shares[array_position(common.lexemes, lexeme)],
                                common.shares[cardinality(common.lexemes) + 1] / 2, 0) AS share
        FROM unnest(tsvector_to_array(to_tsvector(config, question))) AS lexeme
        LEFT JOIN common ON true
    ),
    kept AS (
        SELECT lexeme, row_number() OVER (ORDER BY share, lexeme) AS n,
               sum(share) OVER (ORDER BY share, lexeme) AS running
        FROM words
        WHERE max_share >= 1 OR share <= max_share
    )
    SELECT string_agg('''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''', ' | ')::tsquery
    FROM kept
    WHERE max_rows IS NULL OR n = 1
       OR running * (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'chunks'::regclass) <= max_rows
$$;
