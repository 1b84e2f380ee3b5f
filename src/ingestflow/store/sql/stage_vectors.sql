-- A staging table for vectors that may race other writers (a batch's results).
CREATE TEMP TABLE staged_embeddings (LIKE embeddings) ON COMMIT DROP
