-- Each document's title and the chunking that cut its chunks, written with the chunks
-- (before them: their search vectors read the title).
UPDATE documents d SET title = c.title, chunking = c.chunking
FROM unnest(%(ids)s::uuid[], %(titles)s::text[], %(chunkings)s::jsonb[]) AS c(id, title, chunking)
WHERE d.id = c.id
