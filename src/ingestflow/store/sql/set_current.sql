UPDATE documents SET is_current = true, updated_at = now() WHERE id = ANY(%(ids)s)
