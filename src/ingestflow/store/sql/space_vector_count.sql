-- How many vectors a space holds: what a truncate of its partition removes, and what an
-- index build sizes its memory by. A read of the partition, far cheaper than either.
SELECT count(*) FROM embeddings WHERE space_id = %(space_id)s
