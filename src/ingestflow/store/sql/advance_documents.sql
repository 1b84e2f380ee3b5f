-- Compare-and-set for a batch: moves the documents that are still where the caller found
-- them and returns those; the stage trigger refuses any illegal move.
UPDATE documents
SET stage = %(to_stage)s, updated_at = now()
WHERE id = ANY(%(ids)s) AND stage = ANY(%(from_stages)s)
RETURNING id
