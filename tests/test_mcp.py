"""`ingestflow mcp`, driven by the MCP SDK's own client: over stdio (a real child process)
and over streamable HTTP (a real server on loopback, API keys required, tenant-scoped)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from ingestflow.config import Settings
from support import find, ingest, run_cli, settings_env

TOOLS = {"search", "ingest", "status", "list_documents", "get_document"}


def _payload(result: Any) -> Any:
    """A tool result's JSON: its structured content, or the API's error body that ends an
    error's text (the SDK puts "Error executing tool NAME: " before it)."""
    if result.is_error:
        text = result.content[0].text
        return json.loads(text[text.index("{"):])
    return result.structured_content if result.structured_content is not None else json.loads(result.content[0].text)


def _passages(hits: list[dict]) -> list[tuple[str, int, float]]:
    return [(h["source_name"], h["ordinal"], round(h["score"], 6)) for h in hits]


def _docs(tmp_path: Path, **texts: str) -> list[Path]:
    paths = []
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    return paths


def test_over_stdio_the_sdk_client_lists_the_tools_and_gets_what_search_gets(settings: Settings,
                                                                             tmp_path: Path) -> None:
    ingest(settings, _docs(tmp_path, **{
        "tides.md": "# Tides\n\nSpring tides follow the full moon by a day or two.\n",
        "bees.md": "# Bees\n\nA honey bee colony swarms in late spring, when the hive is crowded.\n"}))
    question = "when does a bee colony swarm"
    expected = _passages([vars(h) for h in find(settings, question).hits])
    params = StdioServerParameters(command=sys.executable, args=["-m", "ingestflow", "mcp"],
                                   env=settings_env(settings), cwd=str(tmp_path))

    async def main() -> None:
        async with Client(params) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            found = _payload(await client.call_tool("search", {"query": question}))
            assert _passages(found["hits"]) == expected and expected
            hit = found["hits"][0]
            assert hit["document_id"] and "snippet" in hit and "pages" in hit and hit["heading_path"] == ["Bees"]

            nothing = _payload(await client.call_tool("search", {"query": "zzqx flibber", "mode": "keyword"}))
            assert nothing["hits"] == [] and nothing["notes"]

            bad = await client.call_tool("search", {"query": "tides", "mode": "semantic"})
            assert bad.is_error and _payload(bad)["error"]["code"] == "unknown_mode"
            typo = await client.call_tool("search", {"query": "tides", "k": "many"})
            assert typo.is_error  # the SDK's own argument validation

            doc = _payload(await client.call_tool("get_document", {"document": "bees.md"}))
            assert doc["document"]["source_name"] == "bees.md" and "swarms" in doc["chunks"][0]["text"]
            missing = await client.call_tool("get_document", {"document": "nothing-such.md"})
            assert _payload(missing)["error"]["code"] == "not_found"

            added = _payload(await client.call_tool("ingest", {"text": "# Comets\n\nA comet's tail points away "
                                                               "from the sun.\n", "name": "comets.md"}))
            assert added["documents"][0]["stage"] == "complete"  # stdio processes before answering
            listed = _payload(await client.call_tool("list_documents", {}))
            assert {d["source_name"] for d in listed["documents"]} == {"tides.md", "bees.md", "comets.md"}

    asyncio.run(main())


@pytest.fixture
def http_server(settings: Settings, tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(tmp_path / "mcp.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "ingestflow", "mcp", "--port", str(port)],
                                  env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "mcp.log").read_text()
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(30)


def test_over_http_a_key_is_required_and_a_tenant_sees_only_its_own(settings: Settings, tmp_path: Path,
                                                                   http_server: str) -> None:
    keys = {}
    for tenant in ("alpha", "beta"):
        created = run_cli(settings, "keys", "create", "--tenant", tenant)
        assert created.returncode == 0, created.stderr
        keys[tenant] = created.stdout.strip().splitlines()[-1]
    ingest(settings, _docs(tmp_path, **{"alpha-secret.md": "# Falcon\n\nProject falcon launches in March.\n"}),
           tenant="alpha")
    ingest(settings, _docs(tmp_path, **{"beta-plan.md": "# Falcon\n\nThe falcon budget is frozen.\n"}),
           tenant="beta")

    for headers in ({}, {"Authorization": "Bearer ifk_wrong"}, {"X-API-Key": "ifk_wrong"}):
        refused = httpx.post(http_server, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized", headers

    expected = {t: _passages([vars(h) for h in find(settings, "falcon", k=10, tenant=t).hits])
                for t in ("alpha", "beta")}

    async def as_tenant(tenant: str) -> None:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {keys[tenant]}"})
        async with http, Client(streamable_http_client(http_server, http_client=http)) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            found = _payload(await client.call_tool("search", {"query": "falcon", "k": 10}))
            assert {h["source_name"] for h in found["hits"]} == {f"{tenant}-{'secret' if tenant == 'alpha' else 'plan'}.md"}
            assert _passages(found["hits"]) == expected[tenant]
            bad = await client.call_tool("search", {"query": "falcon", "mode": "semantic"})
            assert bad.is_error and _payload(bad)["error"]["code"] == "unknown_mode"
            nothing = _payload(await client.call_tool("search", {"query": "zzqx flibber", "mode": "keyword"}))
            assert nothing["hits"] == [] and nothing["notes"]
            other = "beta-plan.md" if tenant == "alpha" else "alpha-secret.md"
            assert _payload(await client.call_tool("get_document", {"document": other}))["error"]["code"] == "not_found"
            local = await client.call_tool("ingest", {"paths": ["/etc/passwd"]})
            assert local.is_error and _payload(local)["error"]["code"] == "invalid_request"
            queued = _payload(await client.call_tool("ingest", {"text": "A note.", "name": f"{tenant}-note.txt"}))
            assert queued["documents"][0]["stage"] in ("queued", "parsing", "chunking", "embedding", "complete")

    asyncio.run(as_tenant("alpha"))
    asyncio.run(as_tenant("beta"))
    assert [h.source_name for h in find(settings, "falcon", tenant="alpha", k=10).hits] == ["alpha-secret.md"]
