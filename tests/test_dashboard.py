"""The dashboard in headless Chromium against a real uvicorn server: what it shows after
its live poll matches the database, and it never shows another tenant's data or the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api_support import CHROMIUM, chromium, live_server, make_key
from ingestflow.api import create_app
from ingestflow.config import Settings
from support import SAMPLES, force_stage, ingest, sql

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it as root)")


def cell(dom: str, stage: str) -> int:
    match = re.search(rf'data-stage="{stage}"[^>]*>(\d+)<', dom)
    assert match, f"no count for {stage} in the page"
    return int(match.group(1))


def test_dashboard_shows_the_database(settings: Settings, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("notes.txt", "release-notes.md", "garden.html"):
        (docs / name).write_bytes((SAMPLES / name).read_bytes())
    ingest(settings, [docs], tenant="acme")
    ingest(settings, [SAMPLES / "notes.txt"], tenant="globex")
    force_stage(settings, "failed", "tenant = 'acme' AND source_name LIKE %s", ("%garden.html",),
                error_stage="parsed", error_code="corrupt_file", error_message="The archive is damaged.")
    sql(settings, "INSERT INTO breakers (service, state, consecutive_failures) VALUES ('openai', 'open', 5)")
    key = make_key(settings, "acme")
    counts = dict(sql(settings, "SELECT stage, count(*) FROM documents WHERE tenant = 'acme' GROUP BY stage"))
    assert counts == {"complete": 2, "failed": 1}

    with live_server(create_app(settings)) as base:
        dumped = chromium(f"{base}/?key={key}", tmp_path, "--dump-dom")
        screenshot = tmp_path / "dashboard.png"
        shot = chromium(f"{base}/?key={key}", tmp_path, f"--screenshot={screenshot}", "--window-size=1280,900")
        login = chromium(f"{base}/", tmp_path, "--dump-dom")

    dom = dumped.stdout
    assert re.search(r'id="status"[^>]*>live<', dom), dumped.stderr[-2000:]
    assert cell(dom, "complete") == counts["complete"]
    assert cell(dom, "failed") == counts["failed"]
    assert re.search(r'id="documents-total">3<', dom)
    assert "tenant: acme" in dom
    assert "corrupt_file" in dom and "The archive is damaged." in dom
    assert re.search(r'id="queue-runnable">0<', dom)
    assert "openai" in dom and ">open<" in dom  # breaker state
    assert "healthy (offline, deterministic)" in dom
    assert "globex" not in dom
    assert key not in dom  # taken from the URL into session storage, not left in the page
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    assert re.search(r'<section id="login">', login.stdout), "the key box is shown without a key"
    assert re.search(r'<main id="board" hidden', login.stdout)
