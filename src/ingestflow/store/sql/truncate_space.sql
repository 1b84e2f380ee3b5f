-- Every vector of a space at once, when no other tenant holds any (drop_space): metadata
-- only, whatever the partition's size, where a DELETE would write every row and leave
-- vacuum the rest. The partition and its index stay, empty. A template: {space_id} is a
-- validated integer.
TRUNCATE embeddings_space_{space_id}
