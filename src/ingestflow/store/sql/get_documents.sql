SELECT * FROM documents WHERE id = ANY(%(ids)s)
