"""Retrievers for LLM frameworks over ``ingestflow.Client`` / ``AsyncClient`` (optional
extras: ``pip install 'ingestflow[langchain]'`` or ``'ingestflow[llamaindex]'``).

What both adapters share: one search, through either client, and what a passage's
metadata says about where it comes from (a citation: source, version, pages, headings).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ingestflow.client import AsyncClient, Client, SearchFilters, SearchHit


@dataclass(frozen=True)
class Query:
    """How a retriever searches: through which client, how many passages, which mode, and
    the score a passage must reach (the model's default when None)."""

    client: Client | AsyncClient
    k: int = 5
    mode: str | None = None
    filters: SearchFilters | None = None
    min_score: float | None = None

    def search(self, text: str) -> list[SearchHit]:
        if isinstance(self.client, AsyncClient):
            raise TypeError("this retriever holds an ingestflow.AsyncClient: call its async method "
                            "(ainvoke / aretrieve), or give it an ingestflow.Client")
        return self.client.search(text, self.k, self.mode, self.filters, min_score=self.min_score).hits

    async def asearch(self, text: str) -> list[SearchHit]:
        if isinstance(self.client, Client):  # its own event loop, run beside this one
            return await asyncio.to_thread(self.search, text)
        return (await self.client.search(text, self.k, self.mode, self.filters, min_score=self.min_score)).hits


def metadata(hit: SearchHit) -> dict[str, Any]:
    """Where a passage comes from, for citing it."""
    return {"source": hit.source_name, "document_id": hit.document_id, "version": hit.version,
            "ordinal": hit.ordinal, "pages": hit.pages, "heading_path": hit.heading_path, "score": hit.score,
            "snippet": hit.snippet}


def node_id(hit: SearchHit) -> str:
    """A passage's stable id: the document version's id and the chunk's position in it."""
    return f"{hit.document_id}:{hit.ordinal}"
