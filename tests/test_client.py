"""The Python API (ingestflow.Client, AsyncClient) and the retrievers over it: on the
embedded database in this process, and against a real API server with a real worker;
each answers what the CLI answers on the same data."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import pytest

import ingestflow
from api_support import free_port, live_server, make_key
from ingestflow import AsyncClient, Client, IngestflowError, SearchFilters
from ingestflow.api import create_app
from ingestflow.config import Settings
from support import SAMPLES, run_cli, start_worker

QUERY = "steady winds for box kites"


def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.md").write_text("# Kites\n\nBox kites fly best in steady winds of twenty knots.\n")
    (folder / "sub" / "bad.pdf").write_bytes(b"%PDF-1.7 broken")
    (folder / "notes.txt").write_bytes((SAMPLES / "notes.txt").read_bytes())
    return folder


def cli_json(settings: Settings, *args: str) -> dict:
    out = run_cli(settings, *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def same_as_the_cli(settings: Settings, client: Client, *tenant: str) -> None:
    """Search and status through the client and through `ingestflow ... --json`."""
    result = client.search(QUERY, k=3)
    assert result.hits and result.hits[0].source_name == "good.md" and result.hits[0].pages == []
    cli = cli_json(settings, "search", QUERY, "-k", "3", *tenant)
    assert {**asdict(result), "hits": [asdict(h) for h in result.hits]} == cli
    nothing = client.search(QUERY, min_score=1.0)  # no passage scores 1: no answer, and a note says so
    assert nothing.hits == [] and any("min_score" in n for n in nothing.notes)
    assert cli_json(settings, "search", QUERY, "--min-score", "1", *tenant)["notes"] == nothing.notes
    status = client.status()
    cli = cli_json(settings, "status", *tenant)
    assert status.stages == cli["stages"] == {"complete": 2, "failed": 1}
    assert asdict(status.queue) == {k: cli["queue"][k] for k in ("runnable", "waiting", "running")}
    assert (status.search_space, status.configured_space) == (cli["spaces"]["active"], cli["spaces"]["configured"])
    bad = next(d for d in client.documents() if d.source_name == "sub/bad.pdf")
    detail = client.status(bad.id)
    cli = cli_json(settings, "status", str(bad.id), *tenant)
    assert (str(detail.id), detail.stage, detail.error_code, detail.error_message, detail.chunks, detail.version) == (
        cli["id"], "failed", "corrupt_file", cli["error_message"], cli["chunks"], 1)


def test_local_client_ingests_searches_and_manages_documents(settings: Settings, tmp_path: Path) -> None:
    folder = inbox(tmp_path)
    with Client(settings) as client:
        outcomes = {o.name: o for o in client.ingest(folder)}  # named as `ingestflow ingest` names them
        assert set(outcomes) == {"good.md", "notes.txt", "sub/bad.pdf"}
        assert outcomes["good.md"].stage == "complete" and outcomes["good.md"].version == 1
        assert (outcomes["sub/bad.pdf"].stage, outcomes["sub/bad.pdf"].error_code) == ("failed", "corrupt_file")
        again = client.ingest([folder / "good.md"], wait=False)
        assert [(o.name, o.duplicate, o.stage) for o in again] == [("good.md", True, "complete")]
        [refused] = client.ingest(b"\x00\x01\x02", name="blob.bin")
        assert (refused.stage, refused.document_id, refused.error_code) == ("refused", None, "unsupported_type")
        same_as_the_cli(settings, client)

        assert client.status("sub/bad.pdf").stage == "failed"  # by source name, as the CLI takes it
        with pytest.raises(IngestflowError) as not_failed:
            client.retry("good.md")
        assert not_failed.value.code == "not_failed"
        for unknown in ("nothing-by-this-name", uuid.uuid4()):
            with pytest.raises(IngestflowError) as missing:
                client.status(unknown)
            assert (missing.value.code, missing.value.message) == ("not_found", "No such document.")
        with pytest.raises(IngestflowError) as mode:
            client.search("kites", mode="fuzzy")
        assert mode.value.code == "unknown_mode"
        with pytest.raises(IngestflowError) as path:
            client.ingest(tmp_path / "missing")
        assert path.value.code == "no_such_path"
        with pytest.raises(IngestflowError) as nameless:
            client.ingest(b"# hi")
        assert nameless.value.code == "invalid_name"

        [upload] = client.ingest(b"# Gliders\n\nGliders ride thermals.\n", name="gliders.md", prefix="air/")
        assert (upload.name, upload.stage) == ("air/gliders.md", "complete")
        assert [h.source_name for h in client.search("thermals", filters=SearchFilters(source_name="air/gliders.md")
                                                     ).hits] == ["air/gliders.md"]
        assert [d.source_name for d in client.documents("failed")] == ["sub/bad.pdf"]
        client.retry("sub/bad.pdf")
        assert client.status("sub/bad.pdf").stage == "queued"
        assert [d.source_name for d in client.documents("failed")] == []
        client.delete(upload.document_id)
        assert "air/gliders.md" not in {d.source_name for d in client.documents()}
        with pytest.raises(IngestflowError) as deleted:
            client.delete(upload.document_id)
        assert deleted.value.code == "not_found"
        costs = client.costs()
        assert {s.service for s in costs.services} >= {"openai", "llamaparse"} and costs.today_usd == 0.0
        assert client.status(tenant="other").stages == {}  # another tenant's view
    client.close()  # again: nothing to do
    with pytest.raises(RuntimeError, match="closed"):
        client.status()
    assert cli_json(settings, "costs")["spend"]["today_usd"] == costs.today_usd


def test_client_opens_the_database_the_cli_opens(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """Settings from the environment, keyword overrides winning; bad ones are the public error."""
    assert settings.database_url is not None
    monkeypatch.setenv("DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("INGESTFLOW_HOME", str(settings.ingestflow_home))
    assert run_cli(settings, "ingest", str(inbox(tmp_path) / "good.md")).returncode == 0
    with Client() as client:
        assert client.status().stages == {"complete": 1}
    with Client(search_mode="keyword") as client:
        assert client.search("kites").mode == "keyword"
    with pytest.raises(IngestflowError) as bad:
        Client(search_mode="fuzzy")
    assert bad.value.code == "invalid_configuration" and "SEARCH_MODE" in bad.value.message


def test_async_client_and_the_retrievers_over_real_data(settings: Settings, tmp_path: Path) -> None:
    from langchain_core.documents import Document as LangChainDocument
    from llama_index.core.schema import NodeWithScore

    from ingestflow.integrations.langchain import IngestflowRetriever as LangChainRetriever
    from ingestflow.integrations.llama_index import IngestflowRetriever as LlamaIndexRetriever

    folder = inbox(tmp_path)
    with Client(settings) as client:
        client.ingest(folder)
        expected = client.search(QUERY, k=2).hits
        docs = LangChainRetriever(client=client, k=2).invoke(QUERY)
        assert all(isinstance(d, LangChainDocument) for d in docs)
        assert [(d.page_content, d.metadata["source"], d.metadata["score"], d.metadata["pages"],
                 d.metadata["heading_path"], d.metadata["version"]) for d in docs] == [
            (h.text, h.source_name, h.score, h.pages, h.heading_path, h.version) for h in expected]
        assert docs[0].metadata["heading_path"] == ["Kites"]
        nodes = LlamaIndexRetriever(client, k=2).retrieve(QUERY)
        assert all(isinstance(n, NodeWithScore) for n in nodes)
        assert [(n.node.get_content(), n.score, n.node.metadata["source"]) for n in nodes] == [
            (h.text, h.score, h.source_name) for h in expected]
        assert "good.md" in nodes[0].node.get_content(metadata_mode="llm")  # the citation reaches the LLM
        assert LangChainRetriever(client=client, min_score=1.0).invoke(QUERY) == []
        assert LlamaIndexRetriever(client, min_score=1.0).retrieve(QUERY) == []
        # A sync client serves an async caller too.
        assert asyncio.run(LangChainRetriever(client=client, k=2).ainvoke(QUERY)) == docs

    async def main() -> None:
        with pytest.raises(RuntimeError, match="AsyncClient"):
            Client(settings)  # inside a running loop: the sync client says what to use
        async with AsyncClient(settings) as aclient:
            result = await aclient.search(QUERY, k=2)
            assert result.hits == expected
            assert await LangChainRetriever(client=aclient, k=2).ainvoke(QUERY) == docs
            anodes = await LlamaIndexRetriever(aclient, k=2).aretrieve(QUERY)
            assert [(n.node.node_id, n.score) for n in anodes] == [(n.node.node_id, n.score) for n in nodes]
            with pytest.raises(TypeError, match="async"):
                LangChainRetriever(client=aclient).invoke(QUERY)
        with pytest.raises(RuntimeError, match="closed"):
            await aclient.search(QUERY)

    asyncio.run(main())


def test_remote_client_answers_what_the_cli_answers(settings: Settings, tmp_path: Path) -> None:
    key = make_key(settings, "acme")
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        with live_server(create_app(settings)) as base, Client(url=base, api_key=key) as client:
            outcomes = {o.name: o for o in client.ingest(inbox(tmp_path))}
            assert {n: o.stage for n, o in outcomes.items()} == {
                "good.md": "complete", "notes.txt": "complete", "sub/bad.pdf": "failed"}
            assert outcomes["sub/bad.pdf"].error_code == "corrupt_file"
            [refused] = client.ingest(b"\x00\x01\x02", name="blob.bin")
            assert (refused.stage, refused.error_code) == ("refused", "unsupported_type")
            same_as_the_cli(settings, client, "--tenant", "acme")

            bad = outcomes["sub/bad.pdf"].document_id
            assert bad is not None
            client.retry(bad)
            # The worker takes it again and fails it again; counts compared below are then still.
            deadline = time.monotonic() + 60
            while client.status(bad).stage != "failed" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert client.status(bad).stage == "failed"
            with pytest.raises(IngestflowError) as not_failed:
                client.retry(outcomes["good.md"].document_id)
            assert not_failed.value.code == "not_failed"
            with pytest.raises(IngestflowError) as missing:
                client.delete(uuid.uuid4())
            assert (missing.value.code, missing.value.message) == ("not_found", "No such document.")
            assert client.status("good.md").id == outcomes["good.md"].document_id  # by name, as locally
            with pytest.raises(IngestflowError) as tenant:
                client.search("kites", tenant="other")
            assert tenant.value.code == "invalid_tenant"
            client.delete(outcomes["notes.txt"].document_id)
            assert {d.source_name for d in client.documents()} == {"good.md", "sub/bad.pdf"}
            assert len(client.documents(limit=1)) == 1
            costs = client.costs()
            local = Client(settings, tenant="acme")
            try:
                assert costs == local.costs()  # the same figures from either side
                assert client.status().stages == local.status().stages
            finally:
                local.close()
            with Client(url=base, api_key="if_not-a-key") as stranger, pytest.raises(IngestflowError) as denied:
                stranger.status()
            assert denied.value.code == "unauthorized"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    with Client(url=f"http://127.0.0.1:{free_port()}", api_key=key) as nobody, \
            pytest.raises(IngestflowError) as unreachable:
        nobody.status()
    assert unreachable.value.code == "server_unreachable"


def test_import_ingestflow_stays_cheap() -> None:
    """The Python API is imported at first use; `import ingestflow` loads nothing heavy."""
    code = ("import sys, ingestflow; ingestflow.Client; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'openai', 'numpy', 'httpx'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert ingestflow.SearchHit.__name__ == "SearchHit"
    with pytest.raises(AttributeError):
        ingestflow.Nothing  # noqa: B018
