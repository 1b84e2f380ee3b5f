-- Whether any chunk is indexed for keyword search in another configuration than this one
-- (two probes of chunks_search_config; "<>" would scan).
SELECT EXISTS (SELECT 1 FROM chunks WHERE search_config < %(config)s::text OR search_config > %(config)s::text)
