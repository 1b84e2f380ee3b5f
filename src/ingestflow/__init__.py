"""ingestflow: documents to searchable pgvector embeddings, within budget.

The Python API (``Client``, ``AsyncClient`` and their result types) lives in
ingestflow/client.py and is imported at first use, so that ``import ingestflow`` and
``ingestflow --help`` stay instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ingestflow.client import (
        AsyncClient,
        Client,
        Costs,
        DaySpend,
        Document,
        DocumentStatus,
        Ingested,
        IngestflowError,
        Queue,
        SearchFilters,
        SearchHit,
        SearchResult,
        ServiceSpend,
        Status,
    )

_LAZY = ("AsyncClient", "Client", "Costs", "DaySpend", "Document", "DocumentStatus", "Ingested",
         "IngestflowError", "Queue", "SearchFilters", "SearchHit", "SearchResult", "ServiceSpend", "Status")
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from ingestflow import client

        return getattr(client, name)
    raise AttributeError(f"module 'ingestflow' has no attribute {name!r}")
