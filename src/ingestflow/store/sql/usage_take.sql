-- Count one use in the tenant's window unless the limit is reached (no row returned).
-- The row lock taken by the upsert serializes concurrent requests of one tenant.
INSERT INTO api_usage AS u (tenant, kind, window_start, amount)
VALUES (%(tenant)s, %(kind)s, %(window_start)s, 1)
ON CONFLICT (tenant, kind, window_start) DO UPDATE
SET amount = u.amount + 1
WHERE u.amount < %(limit)s
RETURNING amount
