-- A space's HNSW cosine index (on its partition) over halfvec (up to 4,000 dimensions), on the
-- typed cast that search.sql uses, with the graph's build parameters. Built under the
-- _next name, then renamed (index_rename_halfvec.sql): a rebuild with other parameters
-- runs while search goes on using the old index. A template: DDL takes no bind parameters,
-- so {space_id}, {dims}, {m} and {ef_construction} are filled in from validated integers,
-- never from user input. The names must match spaces_without_index.sql.
CREATE INDEX CONCURRENTLY embeddings_hnsw_space_{space_id}_next ON embeddings_space_{space_id}
USING hnsw ((embedding::halfvec({dims})) halfvec_cosine_ops) WITH (m = {m}, ef_construction = {ef_construction})
