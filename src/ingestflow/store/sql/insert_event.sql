-- One statement for a whole batch's events (a row per element), not one INSERT each.
INSERT INTO events (document_id, correlation_id, kind, stage, detail)
SELECT * FROM unnest(%(document_ids)s::uuid[], %(correlation_ids)s::uuid[], %(kinds)s::text[], %(stages)s::text[],
                     %(details)s::jsonb[])
