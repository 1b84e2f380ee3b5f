-- How many vectors a space holds: what a truncate of its partition removes. A read of the
-- partition's primary key, far cheaper than deleting the rows.
SELECT count(*) FROM embeddings WHERE space_id = %(space_id)s
