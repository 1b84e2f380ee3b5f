"""A LlamaIndex retriever over ingestflow search (extra ``llamaindex``: llama-index-core).

    from ingestflow import Client
    from ingestflow.integrations.llama_index import IngestflowRetriever

    retriever = IngestflowRetriever(Client(), k=4)
    nodes = retriever.retrieve("how do I reset my password?")  # NodeWithScore, metadata cites the source
"""

from __future__ import annotations

from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ingestflow.client import AsyncClient, Client, SearchFilters, SearchHit
from ingestflow.integrations import Query, metadata, node_id


HIDDEN = ("document_id", "ordinal", "snippet")


class IngestflowRetriever(BaseRetriever):
    """The ``k`` best passages for a query, as ``NodeWithScore`` (the search's score) over
    ``TextNode``s whose metadata holds the source name, document id, version, pages,
    heading path and snippet. With an ``AsyncClient``, use ``aretrieve``; a ``Client``
    serves both. Other keyword arguments go to LlamaIndex's BaseRetriever."""

    def __init__(self, client: Client | AsyncClient, *, k: int = 5, mode: str | None = None,
                 filters: SearchFilters | None = None, min_score: float | None = None, **kwargs: Any) -> None:
        self._ingestflow = Query(client, k, mode, filters, min_score)
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [_node(h) for h in self._ingestflow.search(query_bundle.query_str)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [_node(h) for h in await self._ingestflow.asearch(query_bundle.query_str)]


def _node(hit: SearchHit) -> NodeWithScore:
    meta = metadata(hit)
    score = meta.pop("score")  # the NodeWithScore's own
    # An LLM is shown the citation (source, pages, headings), not ids or the snippet, a copy of the text.
    node = TextNode(id_=node_id(hit), text=hit.text, metadata=meta,
                    excluded_llm_metadata_keys=list(HIDDEN), excluded_embed_metadata_keys=list(HIDDEN))
    return NodeWithScore(node=node, score=score)
