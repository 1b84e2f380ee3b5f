"""A LangChain retriever over ingestflow search (extra ``langchain``: langchain-core).

    from ingestflow import Client
    from ingestflow.integrations.langchain import IngestflowRetriever

    retriever = IngestflowRetriever(client=Client(), k=4)
    docs = retriever.invoke("how do I reset my password?")  # Documents, metadata cite the source
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ingestflow.client import AsyncClient, Client, SearchFilters, SearchHit
from ingestflow.integrations import ARGUMENTS, Query, metadata, node_id


class IngestflowRetriever(BaseRetriever):
    """The ``k`` best passages for a query, as Documents whose metadata holds the source
    name, document id, version, pages, heading path, score and snippet (and the reranker's
    relevance when RERANK_PROVIDER is set). With an ``AsyncClient``, use ``ainvoke``; a
    ``Client`` serves both. A call may change the search's arguments,
    ``retriever.invoke(query, k=1, mode="keyword")``; another name is refused (TypeError)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Client | AsyncClient
    k: int = 5
    mode: str | None = None
    filters: SearchFilters | None = None
    min_score: float | None = None  # passages scoring less are left out (the model's default when None)

    def _query(self, arguments: dict[str, Any]) -> Query:
        arguments.pop("verbose", None)  # LangChain's own, passed along with the search's
        return Query(self.client, **{name: getattr(self, name) for name in ARGUMENTS}).given(arguments)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **arguments: Any) -> list[Document]:
        return [_document(h) for h in self._query(arguments).search(query)]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **arguments: Any) -> list[Document]:
        return [_document(h) for h in await self._query(arguments).asearch(query)]


def _document(hit: SearchHit) -> Document:
    return Document(page_content=hit.text, metadata=metadata(hit), id=node_id(hit))
