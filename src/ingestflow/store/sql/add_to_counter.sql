UPDATE spend_counters
SET amount = amount + %(delta)s
WHERE service = %(service)s AND kind = %(kind)s AND window_start = %(window_start)s
  AND (%(limit)s::numeric IS NULL OR amount + %(delta)s <= %(limit)s::numeric)
RETURNING amount
