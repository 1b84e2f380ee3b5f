-- The space is in a bulk load: its index is held back until the load drains (the first
-- decision's time is kept).
UPDATE embedding_spaces SET bulk_load_since = coalesce(bulk_load_since, now()) WHERE id = %(space_id)s
