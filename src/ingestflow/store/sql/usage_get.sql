-- A tenant's use in one window, read only (no row: nothing used yet).
SELECT amount FROM api_usage
WHERE tenant = %(tenant)s AND kind = %(kind)s AND window_start = %(window_start)s
