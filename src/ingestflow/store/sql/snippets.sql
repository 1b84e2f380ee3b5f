-- The snippets of a search's answer: each chunk's best fragments, every word of the
-- question marked **like this**. Computed for the hits returned only, once reranking
-- (when on) has picked them from the candidates: a headline reads the whole chunk text.
WITH question AS (SELECT question_words(%(config)s::text::regconfig, %(question)s) AS marks)
SELECT c.id AS chunk_id,
       ts_headline(%(config)s::text::regconfig, c.text, q.marks,
                   'MaxFragments=2, MinWords=12, MaxWords=30, StartSel=**, StopSel=**, FragmentDelimiter=" … "')
           AS snippet
FROM chunks c
CROSS JOIN question q
WHERE c.id = ANY(%(chunk_ids)s)
