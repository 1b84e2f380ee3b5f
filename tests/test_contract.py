"""One contract, local and remote (issue 28 item 8): the same mistake gets the same error
code from ``Client()``, ``Client(url=...)``, the CLI's ``--json`` and the HTTP API, because
one rule (operations/bounds.py) decides each bound on every face. Real database, a real
API server on loopback, real CLI processes."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from api_support import auth, live_server, make_key
from ingestflow import Client, IngestflowError, SearchFilters
from ingestflow.api import create_app
from ingestflow.config import Settings
from support import run_cli

TEXT = "# Kites\n\nBox kites fly best in steady winds of twenty knots.\n"

# (what is wrong, search arguments, the code every face gives; None: not an error)
MISTAKES: list[tuple[str, dict[str, Any], str]] = [
    ("8,001-char query", {"query": "x" * 8001}, "query_too_long"),
    ("unknown mode", {"query": "kites", "mode": "semantic"}, "unknown_mode"),
    ("k above 100", {"query": "kites", "k": 101}, "invalid_k"),
    ("k of 0", {"query": "kites", "k": 0}, "invalid_k"),
    ("negative k", {"query": "kites", "k": -1}, "invalid_k"),
    ("lone surrogate in the query", {"query": "kites \ud800"}, "invalid_query"),
    ("NUL in a source_name filter", {"query": "kites", "filters": {"source_name": "a\x00b"}}, "invalid_filters"),
    ("NUL in a mime filter", {"query": "kites", "filters": {"mime": "text/\x00"}}, "invalid_filters"),
    ("unknown filter", {"query": "kites", "filters": {"author": "me"}}, "invalid_filters"),
    ("a document id that is not one", {"query": "kites", "filters": {"document_ids": ["good.md"]}}, "invalid_filters"),
    ("k as text", {"query": "kites", "k": "5"}, "invalid_k"),
    ("min_score above 1", {"query": "kites", "min_score": 1.5}, "invalid_min_score"),
    ("negative min_score", {"query": "kites", "min_score": -0.1}, "invalid_min_score"),
    ("too many document ids", {"query": "kites", "filters": {"document_ids": [str(uuid.uuid4())] * 1001}},
     "invalid_filters"),
]


@pytest.fixture
def faces(settings: Settings, tmp_path: Path) -> Iterator[tuple[Client, Client, httpx.Client, str]]:
    """A local client (tenant acme) holding good.md, a remote client and a raw HTTP client
    for the same tenant, and the API key."""
    key = make_key(settings, "acme")
    (tmp_path / "good.md").write_text(TEXT)
    with Client(settings, tenant="acme") as local:
        [done] = local.ingest(tmp_path / "good.md")
        assert done.stage == "complete"
        with live_server(create_app(settings)) as base, Client(url=base, api_key=key) as remote, \
                httpx.Client(base_url=base, headers=auth(key), timeout=30) as api:
            yield local, remote, api, key


def client_code(client: Client, arguments: dict[str, Any]) -> str:
    with pytest.raises(IngestflowError) as refused:  # filters as a dict, as JSON and LangChain give them
        client.search(arguments["query"], k=arguments.get("k", 5), mode=arguments.get("mode"),
                      filters=arguments.get("filters"), min_score=arguments.get("min_score"))
    return refused.value.code


def api_code(api: httpx.Client, arguments: dict[str, Any]) -> str:
    response = api.post("/v1/search", content=json.dumps(arguments), headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text  # a refusal, as an operation's: never 422 or 500
    return response.json()["error"]["code"]


def cli_code(settings: Settings, arguments: dict[str, Any]) -> str | None:
    """The CLI's error code, or None when the command line cannot say this mistake."""
    if "filters" in arguments or "\ud800" in arguments["query"] or arguments.get("k") == "5":
        return None  # no filter options; a command line is bytes, never a lone surrogate
    args = ["search", arguments["query"], "--tenant", "acme", "--json", "-k", str(arguments.get("k", 5))]
    if "mode" in arguments:
        args += ["--mode", arguments["mode"]]
    if "min_score" in arguments:
        args += ["--min-score", str(arguments["min_score"])]
    done = run_cli(settings, *args)
    assert done.returncode == 1 and done.stdout == "", done.stdout + done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1])["error"]["code"]


def test_the_same_mistake_has_the_same_code_on_every_face(
        settings: Settings, faces: tuple[Client, Client, httpx.Client, str]) -> None:
    local, remote, api, _ = faces
    seen = {}
    for what, arguments, code in MISTAKES:
        cli = cli_code(settings, arguments)
        seen[what] = (client_code(local, arguments), client_code(remote, arguments), api_code(api, arguments),
                      code if cli is None else cli)
    assert seen == {what: (code,) * 4 for what, _, code in MISTAKES}
    typed = local.search("kites", filters=SearchFilters(source_name="good.md"))  # the dataclass, as documented
    assert [h.source_name for h in typed.hits] == ["good.md"]
    assert remote.search("kites", filters={"source_name": "good.md"}).hits == typed.hits


def test_a_blank_query_is_answered_alike_everywhere(settings: Settings,
                                                    faces: tuple[Client, Client, httpx.Client, str]) -> None:
    """The empty query is a blank query: no passages, a note; not an error on one face only."""
    local, remote, api, _ = faces
    for query in ("", " "):
        answers = [local.search(query), remote.search(query)]
        response = api.post("/v1/search", json={"query": query})
        assert response.status_code == 200, response.text
        cli = run_cli(settings, "search", query, "--tenant", "acme", "--json")
        assert cli.returncode == 0, cli.stderr
        for hits, notes in [(a.hits, a.notes) for a in answers] + [
                (response.json()["hits"], response.json()["notes"]), (json.loads(cli.stdout)["hits"],
                                                                       json.loads(cli.stdout)["notes"])]:
            assert hits == [] and notes == ["the query is blank: no passages"], (query, notes)


def test_documents_are_named_alike_locally_and_remotely(settings: Settings,
                                                        faces: tuple[Client, Client, httpx.Client, str]) -> None:
    local, remote, api, _ = faces
    [doc] = local.documents()
    for ref in ("good.md", str(doc.id)[:8], str(doc.id), doc.id, doc):
        assert local.status(ref).id == remote.status(ref).id == doc.id, ref
    for ref in ("nothing-by-this-name", "zzzz", "a\x00b"):
        codes = []
        for client in (local, remote):
            with pytest.raises(IngestflowError) as missing:
                client.status(ref)
            codes.append(missing.value.code)
        assert codes == ["not_found", "not_found"], ref
        assert api.get("/v1/documents/lookup", params={"ref": ref}).json()["error"]["code"] == "not_found"
    cli = run_cli(settings, "status", "nothing-by-this-name", "--tenant", "acme", "--json")
    assert json.loads(cli.stderr.strip().splitlines()[-1])["error"]["code"] == "not_found"


def test_an_unknown_stage_is_refused_alike_everywhere(settings: Settings,
                                                      faces: tuple[Client, Client, httpx.Client, str]) -> None:
    """Not "no documents in that stage" on one face and 422 on another: one rule, one code."""
    local, remote, api, _ = faces
    for client in (local, remote):
        with pytest.raises(IngestflowError) as unknown:
            client.documents(stage="nonsense")
        assert unknown.value.code == "unknown_stage" and "complete" in unknown.value.message
    response = api.get("/v1/documents", params={"stage": "nonsense"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_stage", response.text
    cli = run_cli(settings, "documents", "--stage", "nonsense", "--tenant", "acme", "--json")
    assert cli.returncode == 1 and json.loads(cli.stderr.strip().splitlines()[-1])["error"]["code"] == "unknown_stage"
    assert [d.source_name for d in local.documents(stage="complete")] == ["good.md"]
    assert remote.documents(stage="complete") == local.documents(stage="complete")
    assert remote.documents(stage="failed") == local.documents(stage="failed") == []


def odd_server() -> FastAPI:
    """Not an ingestflow server: a success that is not JSON, a 429 whose Retry-After is a date."""
    app = FastAPI()
    retry_at = datetime.now(UTC) + timedelta(seconds=120)

    @app.post("/v1/search")
    async def html() -> PlainTextResponse:
        return PlainTextResponse("<html>a captive portal</html>")

    @app.get("/v1/dashboard")
    async def busy() -> JSONResponse:
        return JSONResponse({"error": {"code": "rate_limited", "message": "Slow down."}}, status_code=429,
                            headers={"Retry-After": format_datetime(retry_at, usegmt=True)})

    @app.get("/v1/costs")
    async def garbled() -> JSONResponse:
        return JSONResponse({"error": {"code": "unavailable", "message": "Later."}}, status_code=503,
                            headers={"Retry-After": "soon"})

    # A proxy answering 200 with JSON that is no ingestflow answer.
    @app.get("/v1/documents")
    async def listing() -> JSONResponse:
        return JSONResponse([])

    @app.get("/v1/documents/lookup")
    async def lookup() -> JSONResponse:
        return JSONResponse({})

    @app.post("/v1/documents")
    async def upload() -> JSONResponse:
        return JSONResponse({}, status_code=201)

    return app


def following_server() -> FastAPI:
    """Takes an upload, then refuses to say how the document is doing."""
    app = FastAPI()

    @app.post("/v1/documents")
    async def upload() -> JSONResponse:
        return JSONResponse({"id": str(uuid.uuid4()), "version": 1, "duplicate": False, "stage": "queued"},
                            status_code=201)

    @app.get("/v1/documents/{ident}")
    async def revoked(ident: str) -> JSONResponse:
        return JSONResponse({"error": {"code": "unauthorized", "message": "The API key was revoked."}},
                            status_code=401)

    return app


def test_odd_answers_are_the_public_error(settings: Settings) -> None:
    with live_server(odd_server()) as base, Client(url=base, api_key="ifk_x") as client:
        with pytest.raises(IngestflowError) as not_json:
            client.search("kites")
        assert not_json.value.code == "invalid_response" and "not JSON" in not_json.value.message
        with pytest.raises(IngestflowError) as dated:
            client.status()
        assert dated.value.code == "rate_limited"
        assert dated.value.retry_after is not None and 60 < dated.value.retry_after <= 120
        with pytest.raises(IngestflowError) as unreadable:
            client.costs()
        assert (unreadable.value.code, unreadable.value.retry_after) == ("unavailable", None)
        # 200 with the wrong JSON: our error, naming the route; never a KeyError or TypeError.
        for call, route in ((client.documents, f"GET {base}/v1/documents "),
                            (lambda: client.status("good.md"), f"GET {base}/v1/documents/lookup "),
                            (lambda: client.ingest(b"kites", name="k.md"), f"POST {base}/v1/documents ")):
            with pytest.raises(IngestflowError) as shapeless:
                call()
            assert shapeless.value.code == "invalid_response" and route in shapeless.value.message


def test_ingest_server_reads_answers_as_the_client_does(settings: Settings, tmp_path: Path) -> None:
    """``ingest --server``: a wrong-shaped answer and an error while following are the
    server's code and words, exit 2 (the server could not be used), as documented."""
    (tmp_path / "note.md").write_text(TEXT)
    for server, code, words in ((odd_server(), "invalid_response", "POST "), (following_server(), "unauthorized",
                                                                             "The API key was revoked.")):
        with live_server(server) as base:
            for as_json in (True, False):
                done = run_cli(settings, "ingest", *(["--json"] if as_json else []), "--server", base,
                               "--api-key", "ifk_x", "note.md", cwd=tmp_path)
                assert done.returncode == 2, done.stdout + done.stderr
                assert "Traceback" not in done.stderr and words in done.stderr, done.stderr
                if as_json:  # stdout holds the output only: nothing, when there is none
                    assert done.stdout == "" and json.loads(done.stderr.strip().splitlines()[-1])["error"]["code"] == code


def searching(client: Client, started: threading.Barrier, errors: list[BaseException]) -> None:
    """Search until the client refuses; what refused it goes to ``errors``."""
    started.wait()
    try:
        while True:
            client.search("kites", mode="keyword")
    except BaseException as exc:  # noqa: BLE001 - what a user's thread would see
        errors.append(exc)


def test_closing_a_client_other_threads_use(settings: Settings, tmp_path: Path) -> None:
    """Threads searching while another closes the client get "closed", never a broken loop."""
    (tmp_path / "good.md").write_text(TEXT)
    for _ in range(5):
        client = Client(settings)
        client.ingest(tmp_path / "good.md")
        errors: list[BaseException] = []
        started = threading.Barrier(5)
        threads = [threading.Thread(target=searching, args=(client, started, errors)) for _ in range(4)]
        for t in threads:
            t.start()
        started.wait()
        client.close()
        for t in threads:
            t.join(timeout=60)
        assert [(type(e), str(e)) for e in errors] == [(RuntimeError, "this ingestflow client is closed")] * 4
