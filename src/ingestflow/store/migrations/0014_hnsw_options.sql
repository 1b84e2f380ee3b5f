-- One home for a rule two queries need: an HNSW index's build parameter from its
-- reloptions, and pgvector's default for one built without it (m 16, ef_construction 64).
-- spaces_without_index.sql compares it with the policy (a stale index is rebuilt);
-- vector_indexes.sql shows it (doctor).
CREATE FUNCTION hnsw_option(reloptions text[], name text)
RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce((SELECT option_value FROM pg_options_to_table(reloptions) WHERE option_name = name),
                    CASE name WHEN 'm' THEN '16' WHEN 'ef_construction' THEN '64' END)::int
$$;
