"""The dashboard in headless Chromium against a real uvicorn server: what it shows after
its live poll matches the database, and it never shows another tenant's data or the key;
an operator can page, drill down and retry at 1280 px with nothing clipped. Its
throughput figures match the database and read the tallies."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api_support import CHROMIUM, auth, browser, chromium, live_server, make_key
from ingestflow.api import create_app
from ingestflow.config import Settings
from ingestflow.store.sql import query
from support import SAMPLES, force_stage, ingest, sql, submit

needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="chromium is not installed (make test installs it as root)")
BROKEN_PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\ngarbage" + b"\x00" * 64


def cell(dom: str, stage: str) -> int:
    match = re.search(rf'data-stage="{stage}"[^>]*>(\d+)<', dom)
    assert match, f"no count for {stage} in the page"
    return int(match.group(1))


@needs_chromium
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


def acme_and_globex(settings: Settings, tmp_path: Path) -> None:
    """acme: three complete documents and one that really failed (the parser refuses it);
    globex: one complete document."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("notes.txt", "release-notes.md", "garden.html"):
        (docs / name).write_bytes((SAMPLES / name).read_bytes())
    (docs / "broken.pdf").write_bytes(BROKEN_PDF)
    ingest(settings, [docs], tenant="acme")
    ingest(settings, [SAMPLES / "notes.txt"], tenant="globex")


def test_throughput_counts_the_tenants_last_hour_through_an_index(settings: Settings, tmp_path: Path) -> None:
    acme_and_globex(settings, tmp_path)
    chunks = sql(settings, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
                           " WHERE d.tenant = 'acme'")[0][0]
    assert chunks > 0
    # A long history: finishing events of acme's documents, older than the hour.
    sql(settings, "INSERT INTO events (document_id, kind, stage, detail, created_at)"
                  " SELECT d.id, 'stage_done', 'chunked', '{\"chunks\": 7}',"
                  "        now() - interval '61 minutes' - g * interval '1 s'"
                  " FROM documents d, generate_series(1, 5000) g WHERE d.tenant = 'acme'")
    sql(settings, "ANALYZE events")
    key = make_key(settings, "acme")
    with live_server(create_app(settings)) as base:
        answer = httpx.get(f"{base}/v1/dashboard", headers=auth(key))
    assert answer.status_code == 200, answer.text
    throughput = answer.json()["throughput"]
    buckets = throughput["buckets"]
    assert throughput["bucket_seconds"] == 300 and len(buckets) == 12
    starts = [datetime.fromisoformat(b["start"]) for b in buckets]
    assert all(later - earlier == timedelta(minutes=5) for earlier, later in zip(starts, starts[1:]))
    assert starts[-1] <= datetime.now(UTC) < starts[-1] + timedelta(minutes=5)  # the current bucket is last
    assert starts[-1].minute % 5 == 0 and starts[-1].second == 0  # aligned on the clock
    # Neither globex's work nor the old history is counted; the failure is acme's broken.pdf.
    assert sum(b["completed"] for b in buckets) == 3
    assert sum(b["chunks"] for b in buckets) == chunks
    assert sum(b["failed"] for b in buckets) == 1
    # The poll reads the window's per-minute tallies (migration 0022), neither the events
    # nor the documents.
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        [(plan,)] = conn.execute("EXPLAIN (FORMAT JSON) " + query("throughput"),
                                 {"tenant": "acme", "buckets": 12, "width": 300}).fetchall()
    scans = [(node["Node Type"], node.get("Relation Name"), node.get("Index Name"))
             for node in plan_nodes(plan[0]["Plan"])]
    tables = {table for _, table, _ in scans if table}
    assert tables == {"throughput_tallies"}, scans


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in plan_nodes(child))]


OVERFLOWS = """(() => {
  const bad = [];
  const page = document.documentElement.scrollWidth;
  if (page > window.innerWidth) bad.push("page " + page);
  for (const node of document.querySelectorAll("section, table, header, main, dl, div, td, th")) {
    if (node.offsetParent !== null && node.scrollWidth > node.clientWidth + 1)
      bad.push((node.id || node.tagName) + " " + node.scrollWidth + " > " + node.clientWidth);
  }
  for (const svg of document.querySelectorAll("svg")) {  // an SVG clips what it cannot fit
    const { width, height } = svg.getBoundingClientRect();
    for (const item of svg.querySelectorAll("text, rect")) {
      const box = item.getBBox();
      if (box.x < 0 || box.y < 0 || box.x + box.width > width + 1 || box.y + box.height > height + 1)
        bad.push(svg.id + ": " + (item.textContent || "bar"));
    }
  }
  return bad;
})()"""


@needs_chromium
def test_operator_pages_drills_down_and_retries_at_1280px(settings: Settings, tmp_path: Path) -> None:
    acme_and_globex(settings, tmp_path)
    # Queued ones too (no worker runs here), enough for two pages, two of them under names
    # that are user data: markup, and a long name with nowhere to break.
    waiting = tmp_path / "waiting"
    waiting.mkdir()
    hostile, long_name = '<img src=x onerror="window.pwned=1">.md', "quarterly-" + "x" * 180 + ".md"
    for i, name in enumerate([hostile, long_name, *(f"memo-{n:02}.md" for n in range(16))]):
        (waiting / name).write_text(f"# Memo {i}\n\nA name is only a label.\n")
    submit(settings, [waiting], tenant="acme")
    by_stage = dict(sql(settings, "SELECT stage, count(*) FROM documents WHERE tenant = 'acme' GROUP BY stage"))
    assert by_stage == {"complete": 3, "failed": 1, "queued": 18}
    newest = [name for (name,) in sql(settings, "SELECT source_name FROM documents WHERE tenant = 'acme'"
                                                " ORDER BY created_at DESC, id DESC")]
    assert hostile in newest[:20] and long_name in newest[:20]
    [(failed_id,)] = sql(settings, "SELECT id FROM documents WHERE tenant = 'acme' AND stage = 'failed'")
    key = make_key(settings, "acme")
    listed = '[...document.querySelectorAll("#documents [data-document]")].map((b) => b.textContent)'

    with live_server(create_app(settings)) as base, browser(tmp_path, 1280, 900) as page:
        page.open(f"{base}/?key={key}")
        page.wait('document.getElementById("status").textContent === "live"'
                  ' && document.querySelectorAll("#documents [data-document]").length === 20')
        # Links an operator needs, in the header.
        links = page.evaluate('[...document.querySelectorAll("header a[href]")].map((a) => a.getAttribute("href"))')
        assert "/docs" in links and "/metrics" in links
        # Newest first, 20 a page; user text is text: the markup is shown, never parsed.
        assert page.evaluate(listed) == newest[:20]
        assert page.evaluate('document.querySelectorAll("main img").length') == 0
        assert page.evaluate("window.pwned === undefined")
        assert page.evaluate('document.getElementById("hour-completed").textContent') == "3"
        assert page.evaluate('document.getElementById("hour-failed").textContent') == "1"
        # Nothing clipped or overflowing at 1280 px, with every panel filled.
        assert page.evaluate("window.innerWidth") == 1280
        assert page.evaluate(OVERFLOWS) == []
        shot = tmp_path / "dashboard-1280.png"
        assert page.screenshot(shot) == (1280, 900)
        assert shot.stat().st_size > 10_000

        # The next page holds the rest; back again.
        page.click("#doc-older")
        page.wait('document.querySelectorAll("#documents [data-document]").length === 2')
        assert page.evaluate(listed) == newest[20:]
        assert page.evaluate('document.getElementById("doc-older").disabled')
        page.click("#doc-newer")
        page.wait('document.querySelectorAll("#documents [data-document]").length === 20')

        # Filter by stage: only the failed one is listed.
        page.evaluate('(() => { const s = document.getElementById("doc-stage"); s.value = "failed";'
                      ' s.dispatchEvent(new Event("change")); })()')
        page.wait('document.querySelectorAll("#documents [data-document]").length === 1')
        assert page.evaluate(listed) == ["broken.pdf"]

        # Drill down: its details, error and latest events, from GET /v1/documents/{id}.
        page.click(f'#documents [data-document="{failed_id}"]')
        page.wait(f'!document.getElementById("detail").hidden'
                  f' && document.getElementById("detail-fields").textContent.includes("{failed_id}")')
        fields = page.evaluate('Object.fromEntries([...document.querySelectorAll("#detail-fields dt")]'
                               '.map((dt) => [dt.textContent, dt.nextElementSibling.textContent]))')
        assert fields["name"] == "broken.pdf" and fields["stage"] == "failed"
        assert "corrupt_file" in fields["error"] and "could not be read" in fields["error"]
        events = page.evaluate('[...document.querySelectorAll("#detail-events tbody tr")]'
                               '.map((r) => r.cells[1].textContent)')
        expected = [kind for (kind,) in sql(settings, "SELECT kind FROM events WHERE document_id = %s"
                                                      " ORDER BY id DESC LIMIT 20", (failed_id,))]
        assert events == expected and "failed" in events
        assert page.evaluate(OVERFLOWS) == []
        assert page.screenshot(tmp_path / "document-1280.png") == (1280, 900)

        # Retry it from its details: queued again in the database, and the page says so.
        page.click(f'#detail [data-retry="{failed_id}"]')
        page.wait('document.getElementById("doc-message").textContent === "broken.pdf: queued again (queued)"')
        page.wait('document.querySelector("#detail-fields").textContent.includes("queued")'
                  ' && !document.querySelector("#detail [data-retry]")'
                  ' && document.querySelector("#documents tbody").textContent.includes("no documents in this stage")')
    assert sql(settings, "SELECT stage FROM documents WHERE id = %s", (failed_id,)) == [("queued",)]
    retries = sql(settings, "SELECT count(*) FROM events WHERE document_id = %s AND kind = 'retry'", (failed_id,))
    assert retries == [(1,)]
