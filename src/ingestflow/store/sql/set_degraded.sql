UPDATE documents d SET degraded = x.degraded
FROM unnest(%(ids)s::uuid[], %(flags)s::boolean[]) AS x(id, degraded)
WHERE d.id = x.id
