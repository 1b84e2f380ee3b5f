-- Runs in the migration's own transaction: a migration and its record commit together.
INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s)
