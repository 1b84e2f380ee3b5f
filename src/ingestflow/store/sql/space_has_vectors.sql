-- Whether a space holds at least min_vectors vectors, reading no more rows than that.
SELECT count(*) >= %(min_vectors)s
FROM (SELECT 1 FROM embeddings WHERE space_id = %(space_id)s LIMIT %(min_vectors)s) enough
