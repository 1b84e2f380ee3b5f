"""The retrievers keep their frameworks' contracts: LangChain's own standard retriever tests
(package langchain-tests) run against ours over the local client and over a remote one (a
real API server on loopback); LlamaIndex's documented BaseRetriever behaviour is checked
here. A call's search arguments are honoured, and a misspelt one is refused, never
dropped. Real database, real documents."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

from api_support import live_server, make_key
from ingestflow import Client, IngestflowError, SearchFilters
from ingestflow.api import create_app
from ingestflow.config import Settings
from ingestflow.integrations.langchain import IngestflowRetriever

QUERY = "which winds suit kites"
NOTES = {
    "box.md": "# Box kites\n\nBox kites fly best in steady winds of twenty knots.\n",
    "delta.md": "# Delta kites\n\nDelta kites climb in light winds and gusty ones alike.\n",
    "stunt.md": "# Stunt kites\n\nStunt kites need two lines and a strong, even wind.\n",
    "soup.md": "# Soup\n\nA pumpkin soup wants nutmeg, cream and a long simmer.\n",
}


def corpus(folder: Path) -> Path:
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def local_client(settings: Settings, tmp_path: Path) -> Iterator[Client]:
    with Client(settings, tenant="acme") as client:
        assert {o.stage for o in client.ingest(corpus(tmp_path / "notes"))} == {"complete"}
        yield client


@pytest.fixture
def remote_client(settings: Settings, local_client: Client) -> Iterator[Client]:
    """The same documents through a real API server, with the tenant's key."""
    with live_server(create_app(settings)) as base, Client(url=base, api_key=make_key(settings, "acme")) as client:
        yield client


class TestLangChainStandardLocal(RetrieversIntegrationTests):
    """LangChain's standard tests over ``Client()``."""

    client: Client

    @pytest.fixture(autouse=True)
    def _client(self, local_client: Client) -> None:
        self.client = local_client

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return IngestflowRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"client": self.client}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


class TestLangChainStandardRemote(TestLangChainStandardLocal):
    """The same tests over ``Client(url=...)``."""

    @pytest.fixture(autouse=True)
    def _client(self, remote_client: Client) -> None:
        self.client = remote_client


@pytest.mark.parametrize("face", ["local_client", "remote_client"])
def test_call_time_search_arguments_are_honoured_or_refused(face: str, request: pytest.FixtureRequest) -> None:
    client: Client = request.getfixturevalue(face)
    retriever = IngestflowRetriever(client=client, k=4, min_score=0.0)  # k passages, weak ones too
    assert len(retriever.invoke(QUERY)) == 4
    assert len(retriever.invoke(QUERY, k=1)) == 1
    keyword = retriever.invoke("nutmeg", mode="keyword")
    assert [d.metadata["source"] for d in keyword] == ["soup.md"]  # keywords alone: one passage holds it
    only = retriever.invoke(QUERY, filters=SearchFilters(source_name="delta.md"))
    assert [d.metadata["source"] for d in only] == ["delta.md"]
    assert retriever.invoke(QUERY, filters={"source_name": "delta.md"}) == only  # a dict, as JSON has it
    assert len(asyncio.run(retriever.ainvoke(QUERY, k=2))) == 2
    assert retriever.invoke(QUERY, min_score=1.0) == []  # no passage scores 1: no answer
    assert retriever.k == 4  # a call's arguments are the call's only
    for typo in ({"top_k": 1}, {"kk": 1}, {"min_scor": 0.5}):
        with pytest.raises(TypeError, match="unknown search argument"):
            retriever.invoke(QUERY, **typo)
    with pytest.raises(IngestflowError) as bad:
        retriever.invoke(QUERY, k=0)
    assert bad.value.code == "invalid_k"
    with pytest.raises(IngestflowError) as mode:
        retriever.invoke(QUERY, mode="semantic")
    assert mode.value.code == "unknown_mode"


@pytest.mark.parametrize("face", ["local_client", "remote_client"])
def test_llama_index_retriever_keeps_the_base_retriever_contract(face: str, request: pytest.FixtureRequest) -> None:
    """LlamaIndex's BaseRetriever: ``retrieve``/``aretrieve`` take a string or a QueryBundle
    and return NodeWithScore, best first; a callback manager sees one RETRIEVE event with
    the query and the nodes."""
    from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

    from ingestflow.integrations.llama_index import IngestflowRetriever as LlamaIndexRetriever

    client: Client = request.getfixturevalue(face)
    debug = LlamaDebugHandler()
    retriever = LlamaIndexRetriever(client, k=3, callback_manager=CallbackManager([debug]))
    nodes = retriever.retrieve(QUERY)
    assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    scores = [n.score for n in nodes]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    expected = client.search(QUERY, k=3).hits
    assert [(n.node.get_content(), n.score, n.node.metadata["source"]) for n in nodes] == [
        (h.text, h.score, h.source_name) for h in expected]
    bundled = retriever.retrieve(QueryBundle(query_str=QUERY))
    assert [n.node.node_id for n in bundled] == [n.node.node_id for n in nodes]  # stable ids
    assert [n.node.node_id for n in asyncio.run(retriever.aretrieve(QUERY))] == [n.node.node_id for n in nodes]
    llm_view = nodes[0].node.get_content(metadata_mode=MetadataMode.LLM)
    assert nodes[0].node.metadata["source"] in llm_view and nodes[0].node.metadata["document_id"] not in llm_view
    pairs = debug.get_event_pairs(CBEventType.RETRIEVE)
    assert len(pairs) == 3  # one per call
    start, end = pairs[0]
    assert start.payload[EventPayload.QUERY_STR] == QUERY
    assert [n.node.node_id for n in end.payload[EventPayload.NODES]] == [n.node.node_id for n in nodes]
    assert LlamaIndexRetriever(client, k=1, mode="keyword").retrieve("nutmeg")[0].node.metadata["source"] == "soup.md"
