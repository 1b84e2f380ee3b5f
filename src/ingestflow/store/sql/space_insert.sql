-- The no-op update makes RETURNING give the id of a space that already exists.
INSERT INTO embedding_spaces (provider, model, dimensions)
VALUES (%(provider)s, %(model)s, %(dimensions)s)
ON CONFLICT (provider, model, dimensions) DO UPDATE SET dimensions = EXCLUDED.dimensions
RETURNING id
