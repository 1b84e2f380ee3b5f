SELECT id FROM embedding_spaces
WHERE provider = %(provider)s AND model = %(model)s AND dimensions = %(dimensions)s
