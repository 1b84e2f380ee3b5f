-- The hot tables whose planner statistics lag far behind their contents: a bulk load
-- outruns autovacuum (which analyzes at most once a minute), and a plan made for "six
-- rows" loops over the whole table for every row of a batch.
SELECT s.relname::text
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = current_schema()
  AND (s.relname IN ('documents', 'chunks', 'jobs')  -- and each space's partition of embeddings:
       OR s.relid IN (SELECT relid FROM pg_partition_tree('embeddings') WHERE isleaf))
  AND s.n_mod_since_analyze > greatest(%(min_rows)s, c.reltuples * 0.5)
