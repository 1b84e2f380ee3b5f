-- Whether the database has this text search configuration, and which it has.
SELECT bool_or(cfgname = %(config)s), array_agg(cfgname::text ORDER BY cfgname) FROM pg_ts_config
