"""PostgreSQL + pgvector storage: connection, migrations and one module per table group."""
