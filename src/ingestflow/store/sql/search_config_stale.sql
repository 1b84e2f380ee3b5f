-- Whether any chunk is indexed for keyword search in another configuration than this one:
-- two probes of chunks_search_config. Two EXISTS, not one with an OR: once the statement
-- is prepared, the generic plan of "< OR >" filters the whole index (10 ms at 100k
-- chunks, every keyword search), and "<>" would scan.
SELECT EXISTS (SELECT 1 FROM chunks WHERE search_config < %(config)s::text)
    OR EXISTS (SELECT 1 FROM chunks WHERE search_config > %(config)s::text)
