-- Tenants whose searches use another space than this one: in the middle of a model
-- change to it, or not (switch_if_complete tells which).
SELECT tenant FROM active_spaces WHERE space_id <> %(space_id)s ORDER BY tenant
