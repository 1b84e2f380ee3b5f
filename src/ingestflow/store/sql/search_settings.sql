-- For search.sql, in its transaction: keep scanning the HNSW graph until the filters
-- (tenant, source, mime) have let through k rows, instead of returning fewer.
SET LOCAL hnsw.iterative_scan = relaxed_order
