"""ingestflow: documents to searchable pgvector embeddings, within budget."""

__version__ = "0.1.0"
