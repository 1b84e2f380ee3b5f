"""The HTTP API (FastAPI): uploads, documents, search, costs, webhooks, metrics, dashboard."""

from ingestflow.api.app import create_app, serve

__all__ = ["create_app", "serve"]
