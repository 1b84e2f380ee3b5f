-- Vectors are stored inside their rows (STORAGE MAIN), no longer out of line in TOAST.
-- pgvector's types default to EXTERNAL, and a 1536-d halfvec (3,080 bytes) is over the
-- 2 KB TOAST threshold, so every vector read by an exact scan or a re-rank was a TOAST
-- index lookup and two more tuples: an exact scan of a tenant's vectors takes 2.5x less
-- time inline (bench/scale.py). MAIN, not PLAIN: a vector too big for a page (over about
-- 4,000 halfvec dimensions) may still go out of line instead of failing the insert.
-- Rows written before this stay where they are until the table is rewritten
-- (`VACUUM FULL embeddings`, under an exclusive lock); both read the same.
ALTER TABLE embeddings ALTER COLUMN embedding SET STORAGE MAIN;
