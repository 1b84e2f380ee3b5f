-- Since when the space has been in a bulk load without its index (NULL: it is not), for
-- search's note. One row by primary key.
SELECT bulk_load_since FROM embedding_spaces WHERE id = %(space_id)s
