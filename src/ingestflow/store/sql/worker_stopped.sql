-- A worker that stops cleanly leaves at once instead of ageing out.
DELETE FROM workers WHERE owner = %(owner)s
