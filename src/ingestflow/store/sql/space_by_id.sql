SELECT id, provider, model, dimensions FROM embedding_spaces WHERE id = %(space_id)s
