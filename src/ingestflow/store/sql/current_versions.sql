-- These documents and the current version of each one's source, locked, in id order: their
-- chunks are about to be counted in or out of the word counts (count_words.sql), so a
-- rebuild of search vectors in another language (rebuild_search_vectors.sql) leaves those
-- chunks alone until this transaction ends, or, when it came first, is waited for and then
-- read. Row locks on the documents, not on their many chunks. Returns which are current.
SELECT d.id, d.is_current
FROM documents d
WHERE d.id IN (SELECT unnest(%(ids)s::uuid[])
               UNION
               SELECT c.id
               FROM documents t
               JOIN documents c ON c.tenant = t.tenant AND c.source_name = t.source_name AND c.is_current
               WHERE t.id = ANY(%(ids)s))
ORDER BY d.id
FOR NO KEY UPDATE
