-- Hybrid search in one statement: the %(candidates)s nearest chunks in one embedding space
-- (cosine on halfvec, the stored type, the query cast to it too, on the typed cast that
-- matches the space's partial HNSW index; {dims} is a validated integer, not user input)
-- and the %(candidates)s best keyword matches (any searched word of the question, ranked
-- by Okapi BM25 from the tenant's own word counts), each scored on both: a chunk's score
-- is a weight w times its cosine similarity plus the rest times its keyword relevance,
-- both in [0, 1], so a score means the same whichever list found the chunk and a
-- threshold on it means something (min_score). w depends on the question: from
-- %(vector_weight)s when the keyword list is flat down to %(vector_weight_min)s when its
-- best match stands clearly above the rest (see evidence). %(dense)s / %(keyword)s switch a
-- list off (vector-only or keyword-only search; the planner skips it), and the score is
-- then the other part alone.
WITH words AS MATERIALIZED (
    -- Each word of the question with how many of the tenant's current chunks hold it, from
    -- the counts the writers keep (migrations/0024_word_counts.sql): an index probe per
    -- word, so another tenant's documents change neither which words a search uses, nor how
    -- they weigh, nor how long it takes. Past %(max_rows)s + 1 the figure is
    -- %(max_rows)s + 1: a word in more chunks than the budget is left out unless it is the
    -- rarest, and those weigh alike.
    SELECT l.lexeme, least((SELECT coalesce(sum(n.chunks)::bigint, 0)
                            FROM tenant_words n
                            WHERE n.tenant = %(tenant)s AND n.config = %(config)s::text AND n.lexeme = l.lexeme),
                           %(max_rows)s + 1) AS chunks
    FROM unnest(tsvector_to_array(to_tsvector(%(config)s::text::regconfig, %(question)s))) AS l(lexeme)
    WHERE %(keyword)s
),
corpus AS MATERIALIZED (
    -- The tenant's current chunks, counted as at most the number past which any word
    -- within the row budget is within %(max_share)s of them (so the share test below is
    -- exact). A larger tenant's IDFs count it as that many: every word searched there is in
    -- at most %(max_rows)s chunks, and their weights keep their order.
    SELECT least(coalesce(sum(t.chunks)::bigint, 0), ceil(%(max_rows)s / %(max_share)s::real)::bigint + 1) AS chunks
    FROM tenant_chunks t
    WHERE %(keyword)s AND t.tenant = %(tenant)s AND t.config = %(config)s::text
),
searched AS MATERIALIZED (
    -- The words keyword search matches: those in at most %(max_share)s of the tenant's
    -- chunks (all of them when every word is more common: a search for "plan" still finds
    -- the plan), rarest first while the chunks they match stay within %(max_rows)s; the
    -- rarest is always kept. Rare words are what keyword search adds to vectors; common ones
    -- rank little and cost the most. Each with its BM25 weight (IDF), from the same counts.
    SELECT lexeme, ln(1 + (greatest(corpus.chunks, kept.chunks) - kept.chunks + 0.5) / (kept.chunks + 0.5)) AS idf
    FROM (SELECT w.lexeme, w.chunks, row_number() OVER (ORDER BY w.chunks, w.lexeme) AS n,
                 sum(w.chunks) OVER (ORDER BY w.chunks, w.lexeme) AS running
          FROM words w, corpus
          -- a word no chunk holds matches nothing: it never stands in for the common ones
          WHERE w.chunks > 0 AND (w.chunks <= %(max_share)s * corpus.chunks
             OR NOT EXISTS (SELECT FROM words r WHERE r.chunks > 0 AND r.chunks <= %(max_share)s * corpus.chunks))
         ) kept, corpus
    WHERE n = 1 OR running <= %(max_rows)s
),
question AS MATERIALIZED (
    -- tsq: what keyword search matches. bound: the BM25 score no chunk reaches, (k1 + 1)
    -- times the weights of all the question's words, searched or not, so a chunk holding
    -- few of them (a question about something the documents do not say) scores low.
    SELECT (SELECT any_of(array_agg(lexeme)) FROM searched) AS tsq,
           (SELECT 2.2 * sum(ln(1 + (greatest(corpus.chunks, w.chunks) - w.chunks + 0.5) / (w.chunks + 0.5)))
            FROM words w, corpus) AS bound
),
dense AS (
    SELECT chunk_id, 1 - distance AS similarity
    FROM (
        SELECT e.chunk_id, e.embedding::halfvec({dims}) <=> %(query)s::halfvec({dims}) AS distance
        FROM embeddings e
        JOIN chunks c ON c.id = e.chunk_id
        JOIN documents d ON d.id = c.document_id
        WHERE %(dense)s AND e.space_id = %(space_id)s AND d.is_current AND d.tenant = %(tenant)s
          AND (%(source_name)s::text IS NULL OR d.source_name = %(source_name)s)
          AND (%(document_ids)s::uuid[] IS NULL OR d.id = ANY(%(document_ids)s::uuid[]))
          AND (%(mime)s::text IS NULL OR d.mime = %(mime)s)
        -- The CASE folds away at planning (the flags are bound values), leaving one order:
        -- %(exact)s (few chunks pass the filters, search_prepare.sql): one the HNSW indexes
        -- cannot serve, so the planner reaches the vectors through the tenant's documents
        -- and compares each; %(binary)s: the Hamming distance of sign bits, walked in the
        -- space's binary graph for %(rerank)s times the candidates, which the outer query
        -- re-ranks by cosine; else cosine, walked in the halfvec graph (or scanned).
        ORDER BY CASE WHEN %(exact)s THEN (e.embedding::halfvec({dims}) <=> %(query)s::halfvec({dims})) + 0
                      WHEN %(binary)s THEN binary_quantize(e.embedding::halfvec({dims}))::bit({dims})
                                           <~> binary_quantize(%(query)s::halfvec({dims}))
                      ELSE e.embedding::halfvec({dims}) <=> %(query)s::halfvec({dims}) END
        LIMIT CASE WHEN %(binary)s AND NOT %(exact)s THEN %(candidates)s * %(rerank)s ELSE %(candidates)s END
    ) nearest
    ORDER BY distance, chunk_id
    LIMIT %(candidates)s
),
matches AS MATERIALIZED (
    -- At most %(max_rows)s chunks holding a searched word are ranked: when even the rarest
    -- word is in more chunks than that, ranking all of them is the whole cost of a search
    -- (24,000 chunks, 450 ms at 100k), so the first ones found are ranked and the answer
    -- says so (keyword_capped).
    SELECT c.id AS chunk_id, c.search_vector
    FROM question q
    JOIN chunks c ON c.search_vector @@ q.tsq
    JOIN documents d ON d.id = c.document_id
    WHERE %(keyword)s AND c.search_config = %(config)s::text AND d.is_current AND d.tenant = %(tenant)s
      AND (%(source_name)s::text IS NULL OR d.source_name = %(source_name)s)
      AND (%(document_ids)s::uuid[] IS NULL OR d.id = ANY(%(document_ids)s::uuid[]))
      AND (%(mime)s::text IS NULL OR d.mime = %(mime)s)
    LIMIT %(max_rows)s + 1  -- one more than is ranked: whether there were more
),
relevance AS MATERIALIZED (
    -- Okapi BM25 (k1 1.2; no length normalisation: chunks are already of bounded length,
    -- and the benchmark ranked as well without) of the matches ranked and of the nearest
    -- chunks, over the searched words, divided by the question's bound: in [0, 1). An
    -- occurrence in the document's name or headings (weights A, B) counts %(heading_weight)s
    -- times one in the text.
    SELECT x.chunk_id, bool_or(x.matched) AS matched,
           max((SELECT coalesce(sum(s.idf * f.n * 2.2 / (f.n + 1.2)), 0)
                FROM unnest(x.search_vector) t
                JOIN searched s ON s.lexeme = t.lexeme
                CROSS JOIN LATERAL (
                    SELECT cardinality(array_positions(t.weights, 'D'))
                           + %(heading_weight)s * (cardinality(t.weights) - cardinality(array_positions(t.weights, 'D')))
                           AS n) f) / nullif(q.bound, 0)) AS relevance
    FROM (SELECT chunk_id, search_vector, true AS matched FROM (SELECT * FROM matches LIMIT %(max_rows)s) m
          UNION ALL
          SELECT n.chunk_id, c.search_vector, false
          FROM dense n JOIN chunks c ON c.id = n.chunk_id
          WHERE %(keyword)s AND c.search_config = %(config)s::text) x
    CROSS JOIN question q
    GROUP BY x.chunk_id
),
keyword AS (
    SELECT chunk_id, relevance
    FROM relevance
    WHERE matched
    ORDER BY relevance DESC, chunk_id
    LIMIT %(candidates)s
),
evidence AS (
    -- How clearly keyword search singles out its best match: the gap between its best and
    -- its fifth best relevance (0 past the end of the list), a gap of 0.5 or more counting
    -- fully. A rare word (a form code, a name) found in a few chunks makes a gap; common
    -- words spread over many chunks, or a paraphrase sharing few words, leave the list flat,
    -- and then the cosine, which ranks by meaning, weighs more.
    SELECT %(vector_weight)s - (%(vector_weight)s - %(vector_weight_min)s)
           * least(1, coalesce(max(relevance) - coalesce((SELECT relevance FROM keyword
                                                           ORDER BY relevance DESC, chunk_id OFFSET 4 LIMIT 1), 0),
                               0) / 0.5) AS w
    FROM keyword
),
fused AS (
    -- Both lists' chunks, each scored on both parts: a keyword match's cosine similarity is
    -- one more distance (its vector, by primary key), a near chunk's relevance was ranked
    -- above. A negative cosine counts as 0.
    SELECT chunk_id,
           CASE WHEN NOT %(keyword)s THEN similarity WHEN NOT %(dense)s THEN relevance
                ELSE evidence.w * similarity + (1 - evidence.w) * relevance END AS score
    FROM evidence, (
        SELECT u.chunk_id,
               greatest(coalesce(n.similarity, CASE WHEN %(dense)s THEN (
                   SELECT 1 - (e.embedding::halfvec({dims}) <=> %(query)s::halfvec({dims}))
                   FROM embeddings e WHERE e.chunk_id = u.chunk_id AND e.space_id = %(space_id)s) END), 0) AS similarity,
               coalesce(r.relevance, 0) AS relevance
        FROM (SELECT chunk_id FROM dense UNION SELECT chunk_id FROM keyword) u
        LEFT JOIN dense n ON n.chunk_id = u.chunk_id
        LEFT JOIN relevance r ON r.chunk_id = u.chunk_id
    ) both_parts
    ORDER BY score DESC, chunk_id
    LIMIT %(k)s
)
SELECT c.id AS chunk_id, d.id AS document_id, d.source_name, d.version, c.ordinal, c.text, c.metadata,
       f.score,
       (SELECT count(*) FROM matches) > %(max_rows)s AS keyword_capped
FROM fused f
JOIN chunks c ON c.id = f.chunk_id
JOIN documents d ON d.id = c.document_id
ORDER BY f.score DESC, c.id
