-- The legal moves of ingestflow.lifecycle, one row each (the table was emptied first).
INSERT INTO stage_transitions (from_stage, to_stage, actor)
SELECT * FROM unnest(%(from_stages)s::text[], %(to_stages)s::text[], %(actors)s::text[])
