-- Embeddings are stored as halfvec (float16): half the bytes of vector per row, and
-- pgvector's HNSW takes halfvec up to 4,000 dimensions (vector: 2,000), so a 3072-d
-- space gets an index too. Cosine rankings barely move (bench/halfvec.py measures it).
--
-- The per-space HNSW indexes are built on embedding::vector(dims); the type change would
-- rebuild each of them on the old cast, which searches (now on embedding::halfvec(dims))
-- no longer match. So they are dropped first, and because they keep their names
-- (embeddings_hnsw_space_<id>), spaces_without_index.sql sees them missing: the next
-- worker's index maintenance, or `ingestflow db index`, builds them again as halfvec
-- indexes, CONCURRENTLY. Until then searches are exact scans, which return the true
-- nearest neighbours. The type change rewrites the table under an exclusive lock.
DO $$
DECLARE
    old_index text;
BEGIN
    FOR old_index IN
        SELECT indexname FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename = 'embeddings'
          AND indexname LIKE 'embeddings\_hnsw\_space\_%'
    LOOP
        EXECUTE format('DROP INDEX %I', old_index);
    END LOOP;
END $$;

ALTER TABLE embeddings ALTER COLUMN embedding TYPE halfvec USING embedding::halfvec;
