"""The API docs in headless Chromium against a real uvicorn server with every address
outside loopback unreachable: Swagger UI renders every operation from assets the app
serves itself, without an API key, and the page asks nothing of any other host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api_support import CHROMIUM, chromium, live_server
from ingestflow.api import create_app
from ingestflow.config import Settings

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it as root)")
# Chromium sends loopback past any proxy, so this proxy (a closed loopback port) cuts off the rest.
OFFLINE = "--proxy-server=127.0.0.1:9"


def page_requests(net_log: Path, origin: str) -> set[str]:
    """URLs the page itself asked for (the browser's own background requests have no origin)."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return {e["params"]["url"] for e in log["events"]
            if e["type"] == start and e.get("params", {}).get("initiator") == origin}


def test_docs_render_offline(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings)
    operations = [(path, method) for path, item in app.openapi()["paths"].items() for method in item]
    net_log = tmp_path / "net-log.json"
    with live_server(app) as base:
        dumped = chromium(f"{base}/docs", tmp_path, OFFLINE, f"--log-net-log={net_log}", "--dump-dom")

    dom = dumped.stdout
    assert 'class="swagger-ui"' in dom, dumped.stderr[-2000:]
    for path, method in operations:
        assert f'data-path="{path}"' in dom, f"{method.upper()} {path} is not listed"
    requested = page_requests(net_log, base)
    assert {f"{base}/openapi.json", f"{base}/docs/assets/swagger-ui-bundle.js"} <= requested
    assert all(url.startswith(f"{base}/") for url in requested), requested
