"""Retrievers for LLM frameworks over ``ingestflow.Client`` / ``AsyncClient`` (optional
extras: ``pip install 'ingestflow[langchain]'`` or ``'ingestflow[llamaindex]'``).

What both adapters share: one search, through either client, and what a passage's
metadata says about where it comes from (a citation: source, version, pages, headings).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ingestflow.client import AsyncClient, Client, SearchFilters, SearchHit


@dataclass(frozen=True)
class Query:
    """How a retriever searches: through which client, and the arguments of
    ``Client.search`` (every field but ``client``: a new search argument is one more field
    here, and a LangChain call can give it); ``min_score`` is the score a passage must reach
    (the model's default when None)."""

    client: Client | AsyncClient
    k: int = 5
    mode: str | None = None
    filters: SearchFilters | Mapping[str, Any] | None = None
    min_score: float | None = None

    def given(self, arguments: Mapping[str, Any]) -> Query:
        """This search with some arguments replaced (a call's ``k=1``); TypeError for a name
        that is not a search argument, rather than a search that silently ignores it."""
        unknown = sorted(set(arguments) - set(ARGUMENTS))
        if unknown:
            raise TypeError(f"unknown search argument(s) {', '.join(unknown)}; an ingestflow retriever takes "
                            f"{', '.join(ARGUMENTS)}")
        return replace(self, **arguments)

    def _arguments(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ARGUMENTS}

    def search(self, text: str) -> list[SearchHit]:
        if isinstance(self.client, AsyncClient):
            raise TypeError("this retriever holds an ingestflow.AsyncClient: call its async method "
                            "(ainvoke / aretrieve), or give it an ingestflow.Client")
        return self.client.search(text, **self._arguments()).hits

    async def asearch(self, text: str) -> list[SearchHit]:
        if isinstance(self.client, Client):  # its own event loop, run beside this one
            return await asyncio.to_thread(self.search, text)
        return (await self.client.search(text, **self._arguments())).hits


ARGUMENTS = tuple(f.name for f in fields(Query) if f.name != "client")


def metadata(hit: SearchHit) -> dict[str, Any]:
    """Where a passage comes from, for citing it; a reranked one also has its ``relevance``."""
    return {"source": hit.source_name, "document_id": hit.document_id, "version": hit.version,
            "ordinal": hit.ordinal, "pages": hit.pages, "heading_path": hit.heading_path, "score": hit.score,
            "snippet": hit.snippet, **({} if hit.relevance is None else {"relevance": hit.relevance})}


def node_id(hit: SearchHit) -> str:
    """A passage's stable id: the document version's id and the chunk's position in it."""
    return f"{hit.document_id}:{hit.ordinal}"
