-- A space in a bulk load (issue 30): the queue fills it faster than an HNSW graph takes
-- inserts, so index maintenance holds its index back (or drops one built too early) and
-- builds it once when the load drains (store/vectors.py). Set then, cleared once the
-- space has a valid index; search reads it to say the space is warming up (its vectors
-- are compared exactly meanwhile). NULL: not loading.
ALTER TABLE embedding_spaces ADD COLUMN bulk_load_since timestamptz;
