-- Versions that lost the race to a newer one: retired at once.
UPDATE documents
SET is_current = false, superseded_at = now(), stage = 'superseded', updated_at = now()
WHERE id = ANY(%(ids)s)
