-- This version lost the race to a newer one that is already current: retire it at once.
UPDATE documents
SET is_current = false, superseded_at = now(), stage = 'superseded', updated_at = now()
WHERE id = %(document_id)s
