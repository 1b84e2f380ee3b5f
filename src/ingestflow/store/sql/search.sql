-- Hybrid search in one statement: the %(candidates)s nearest chunks in one embedding space
-- (cosine on halfvec, the stored type, the query cast to it too, on the typed cast that
-- matches the space's partial HNSW index; {dims} is a validated integer, not user input)
-- and the %(candidates)s best keyword matches (any word of the question, ts_rank_cd),
-- fused by reciprocal rank fusion: a chunk scores sum(weight / (rrf_k + rank)) over the
-- lists it is in (weight 1 for vectors, %(keyword_weight)s for keywords). %(dense)s /
-- %(keyword)s switch a list off (vector-only or keyword-only search); the planner skips a
-- switched-off list. The score returned is the mode's own: cosine similarity, ts_rank_cd,
-- or the fused one.
WITH words AS MATERIALIZED (
    -- Each word of the question with how many of the tenant's searchable chunks hold it,
    -- counted up to %(max_rows)s + 1 only (a bounded read, whatever the tenant's size: a
    -- word in more chunks than the budget is left out unless it is the rarest). The
    -- tenant's own chunks only: another tenant's documents never change which words a
    -- search uses.
    SELECT w.lexeme, (SELECT count(*) FROM (
               SELECT 1
               FROM chunks c JOIN documents d ON d.id = c.document_id
               WHERE c.tenant = %(tenant)s AND c.search_config = %(config)s::text AND d.is_current
                 AND c.search_vector @@ any_of(ARRAY[w.lexeme])
               LIMIT %(max_rows)s + 1) holding) AS chunks
    FROM unnest(tsvector_to_array(to_tsvector(%(config)s::text::regconfig, %(question)s))) AS w(lexeme)
    WHERE %(keyword)s
),
corpus AS MATERIALIZED (
    -- The tenant's searchable chunks, counted up to the number past which any word within
    -- the row budget is within %(max_share)s of them (so the share test below is exact).
    SELECT count(*) AS chunks FROM (
        SELECT 1
        FROM chunks c JOIN documents d ON d.id = c.document_id
        WHERE %(keyword)s AND c.tenant = %(tenant)s AND c.search_config = %(config)s::text AND d.is_current
        LIMIT ceil(%(max_rows)s / %(max_share)s::real)::bigint + 1) searchable
),
question AS MATERIALIZED (
    -- tsq, what keyword search matches: the words in at most %(max_share)s of the tenant's
    -- chunks (all of them when every word is more common: a search for "plan" still finds
    -- the plan), rarest first while the chunks they match stay within %(max_rows)s; the
    -- rarest is always kept. Rare words are what keyword search adds to vectors; common ones
    -- rank little and cost the most. marks: every word, for the snippets.
    SELECT (SELECT any_of(array_agg(lexeme))
            FROM (SELECT w.lexeme, row_number() OVER (ORDER BY w.chunks, w.lexeme) AS n,
                         sum(w.chunks) OVER (ORDER BY w.chunks, w.lexeme) AS running
                  FROM words w, corpus
                  WHERE w.chunks <= %(max_share)s * corpus.chunks
                     OR NOT EXISTS (SELECT FROM words r WHERE r.chunks <= %(max_share)s * corpus.chunks)) kept
            WHERE n = 1 OR running <= %(max_rows)s) AS tsq,
           question_words(%(config)s::text::regconfig, %(question)s) AS marks
),
dense AS (
    SELECT chunk_id, row_number() OVER (ORDER BY distance, chunk_id) AS rank, 1 - distance AS similarity
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
keyword AS (
    SELECT chunk_id, row_number() OVER (ORDER BY relevance DESC, chunk_id) AS rank, relevance
    FROM (
        SELECT m.chunk_id, ts_rank_cd(m.search_vector, q.tsq, %(normalization)s) AS relevance
        FROM (SELECT * FROM matches LIMIT %(max_rows)s) m CROSS JOIN question q
        ORDER BY relevance DESC, m.chunk_id
        LIMIT %(candidates)s
    ) ranked
),
fused AS (
    SELECT chunk_id, sum(weight / (%(rrf_k)s + rank)) AS rrf, max(similarity) AS similarity,
           max(relevance) AS relevance
    FROM (SELECT chunk_id, rank, 1.0 AS weight, similarity, NULL::real AS relevance FROM dense
          UNION ALL
          SELECT chunk_id, rank, %(keyword_weight)s::numeric, NULL, relevance FROM keyword) ranked
    GROUP BY chunk_id
    ORDER BY rrf DESC, chunk_id
    LIMIT %(k)s
)
SELECT c.id AS chunk_id, d.id AS document_id, d.source_name, d.version, c.ordinal, c.text, c.metadata,
       CASE WHEN NOT %(keyword)s THEN f.similarity WHEN NOT %(dense)s THEN f.relevance ELSE f.rrf END AS score,
       ts_headline(%(config)s::text::regconfig, c.text, q.marks,
                   'MaxFragments=2, MinWords=12, MaxWords=30, StartSel=**, StopSel=**, FragmentDelimiter=" … "')
           AS snippet,
       (SELECT count(*) FROM matches) > %(max_rows)s AS keyword_capped
FROM fused f
JOIN chunks c ON c.id = f.chunk_id
JOIN documents d ON d.id = c.document_id
CROSS JOIN question q
ORDER BY f.rrf DESC, c.id
