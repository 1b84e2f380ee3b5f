-- Keyword search ranks every chunk that holds a searched word, so a word found in
-- thousands of chunks is what a search costs (measured: 28 us a chunk ranked at 100k
-- chunks; 1 s for a question of common words). any_word_query now takes a row budget:
-- words are kept rarest first while the chunks they are estimated to match (their shares
-- of pg_stats' most common elements, times the table's rows) stay within max_rows, and
-- the rarest is always kept. Rare words are what keyword search adds to vectors; common
-- ones rank little and cost the most. A word missing from the most common elements is
-- estimated as the planner does: half the least common one's share. Snippets and the
-- "any word left?" check need no statistics: question_words, which reads none (the
-- statistics lookup was most of the cost of a short search).
DROP FUNCTION any_word_query(regconfig, text, real);

-- Lexemes ORed into a tsquery, each quoted, never parsed: tsquery syntax in a question
-- (& | ! ( ) : *) is just text. NULL when there is none. The one place a lexeme is quoted.
CREATE FUNCTION any_of(lexemes text[])
RETURNS tsquery LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg('''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''', ' | ')::tsquery
    FROM unnest(lexemes) AS lexeme
$$;

-- Every word of a question, after stemming and stop words.
CREATE FUNCTION question_words(config regconfig, question text)
RETURNS tsquery LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT any_of(tsvector_to_array(to_tsvector(config, question)))
$$;

-- What keyword search matches: the words in at most max_share of all chunks (all of
-- them when every word is more common: a search for "plan" still finds the plan), rarest
-- first within the row budget.
CREATE FUNCTION any_word_query(config regconfig, question text, max_share real, max_rows real)
RETURNS tsquery LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH stats AS (
        SELECT most_common_elems::text::text[] AS lexemes, most_common_elem_freqs AS shares
        FROM pg_stats
        WHERE schemaname = current_schema() AND tablename = 'chunks' AND attname = 'search_vector'
    ),
    common AS (
        SELECT e.lexeme, s.shares[e.n] AS share
        FROM stats s, unnest(s.lexemes) WITH ORDINALITY AS e(lexeme, n)
    ),
    words AS (
        SELECT w.lexeme,
               coalesce(c.share, (SELECT shares[cardinality(lexemes) + 1] / 2 FROM stats), 0) AS share
        FROM unnest(tsvector_to_array(to_tsvector(config, question))) AS w(lexeme)
        LEFT JOIN common c ON c.lexeme = w.lexeme
    ),
    kept AS (
        SELECT lexeme, row_number() OVER (ORDER BY share, lexeme) AS n,
               sum(share) OVER (ORDER BY share, lexeme) AS running
        FROM words
        WHERE share <= max_share OR NOT EXISTS (SELECT FROM words WHERE share <= max_share)
    )
    SELECT any_of(array_agg(lexeme))
    FROM kept
    WHERE n = 1 OR running * (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'chunks'::regclass) <= max_rows
$$;
