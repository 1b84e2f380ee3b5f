-- One partition of embeddings per embedding space (LIST on space_id): dropping an old
-- model's space is a TRUNCATE of its partition, not a DELETE of millions of rows and the
-- vacuum after it; each space's HNSW index is a plain index on its partition (no partial
-- predicate), built CONCURRENTLY by the workers' index maintenance as before.
--
-- The rows move into the new table; the old one goes with its per-space indexes, which
-- keep their names (embeddings_hnsw_space_<id>, embeddings_binary_space_<id>), so
-- spaces_without_index.sql sees them missing and the next index maintenance (or
-- `ingestflow db index`) builds them on the partitions. Until then searches are exact.
-- The move rewrites every vector, under an exclusive lock: plan for it on a large table.
ALTER TABLE embeddings RENAME TO embeddings_unpartitioned;
ALTER INDEX embeddings_pkey RENAME TO embeddings_unpartitioned_pkey;

CREATE TABLE embeddings (
    chunk_id    uuid NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    space_id    integer NOT NULL REFERENCES embedding_spaces (id),
    embedding   halfvec NOT NULL,
    PRIMARY KEY (chunk_id, space_id)
) PARTITION BY LIST (space_id);
ALTER TABLE embeddings ALTER COLUMN embedding SET STORAGE MAIN;  -- as 0011: inside the rows

-- A space's partition; vectors.ensure_space creates it with the space (space_partition.sql).
DO $$
DECLARE
    space integer;
BEGIN
    FOR space IN SELECT id FROM embedding_spaces ORDER BY id LOOP
        EXECUTE format('CREATE TABLE embeddings_space_%s PARTITION OF embeddings FOR VALUES IN (%s)', space, space);
    END LOOP;
END $$;

INSERT INTO embeddings (chunk_id, space_id, embedding)
SELECT chunk_id, space_id, embedding FROM embeddings_unpartitioned;
DROP TABLE embeddings_unpartitioned;
