-- Keyword search's per-tenant statistics, kept by the writers (issue 28's noted follow-up).
-- search.sql counted, for each query word, the tenant's chunks holding it with a GIN scan
-- that reads the word's postings of every tenant (57 ms p50 at 100k chunks, and a search's
-- time grew with how common its words are in other tenants' documents). These tables hold
-- the counts instead, for the tenant's current chunks: one index probe per query word.
--
-- A row per slot: each writing transaction adds to the slot of its connection
-- (store/words.py), so workers finishing documents of one tenant at once do not queue on
-- the rows of its common words and its chunk total; a count is the sum over the slots.
-- A slot's own figure means nothing alone (a chunk counted in by one slot may be counted
-- out by another), only the sum.

-- How many of the tenant's current chunks, indexed in text search configuration `config`,
-- hold `lexeme` (their search vectors: document name, headings and text).
CREATE TABLE tenant_words (
    tenant  text NOT NULL,
    config  text NOT NULL,
    lexeme  text NOT NULL,
    slot    smallint NOT NULL,
    chunks  bigint NOT NULL,
    PRIMARY KEY (tenant, config, lexeme, slot)
);

-- How many current chunks the tenant has, indexed in `config` (BM25's N).
CREATE TABLE tenant_chunks (
    tenant  text NOT NULL,
    config  text NOT NULL,
    slot    smallint NOT NULL,
    chunks  bigint NOT NULL,
    PRIMARY KEY (tenant, config, slot)
);

-- The one way the counts change: chunks (their tenant, configuration and search vector)
-- counted in (sign 1) or out (-1), added to the rows of slot `into_slot`. Each table is
-- written in key order, the same in every transaction, so two writers sharing a slot wait
-- for one another and never deadlock.
CREATE FUNCTION count_chunk_words(tenants text[], configs text[], vectors tsvector[], signs integer[], into_slot integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO tenant_words AS w (tenant, config, lexeme, slot, chunks)
    SELECT c.tenant, c.config, l.lexeme, into_slot, sum(c.sign)
    FROM unnest(tenants, configs, vectors, signs) AS c(tenant, config, vector, sign)
    CROSS JOIN LATERAL unnest(tsvector_to_array(c.vector)) AS l(lexeme)
    GROUP BY c.tenant, c.config, l.lexeme
    HAVING sum(c.sign) <> 0
    ORDER BY c.tenant, c.config, l.lexeme
    ON CONFLICT (tenant, config, lexeme, slot) DO UPDATE SET chunks = w.chunks + excluded.chunks;

    INSERT INTO tenant_chunks AS t (tenant, config, slot, chunks)
    SELECT c.tenant, c.config, into_slot, sum(c.sign)
    FROM unnest(tenants, configs, signs) AS c(tenant, config, sign)
    GROUP BY c.tenant, c.config
    HAVING sum(c.sign) <> 0
    ORDER BY c.tenant, c.config
    ON CONFLICT (tenant, config, slot) DO UPDATE SET chunks = t.chunks + excluded.chunks;
$$;

-- The counts of what exists now, in slot 0.
INSERT INTO tenant_words (tenant, config, lexeme, slot, chunks)
SELECT c.tenant, c.search_config, l.lexeme, 0, count(*)
FROM chunks c
JOIN documents d ON d.id = c.document_id
CROSS JOIN LATERAL unnest(tsvector_to_array(c.search_vector)) AS l(lexeme)
WHERE d.is_current AND c.search_config IS NOT NULL
GROUP BY c.tenant, c.search_config, l.lexeme;

INSERT INTO tenant_chunks (tenant, config, slot, chunks)
SELECT c.tenant, c.search_config, 0, count(*)
FROM chunks c
JOIN documents d ON d.id = c.document_id
WHERE d.is_current AND c.search_config IS NOT NULL
GROUP BY c.tenant, c.search_config;
