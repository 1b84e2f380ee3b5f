"""How commands show their results: Rich tables for people, ``--json`` for scripts.

Everything that comes from a user or a provider (file names, error messages, snippets) is
escaped: a file named ``[/x]`` is text, not Rich markup. Long names keep their end (the
file name) rather than their first characters.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from ingestflow.cli.common import console, warn
from ingestflow.lifecycle import Stage

if TYPE_CHECKING:
    from ingestflow.config import Home
    from ingestflow.operations.costs import Spend
    from ingestflow.operations.documents import Submitted
    from ingestflow.operations.health import Doctor
    from ingestflow.operations.search import SearchResult
    from ingestflow.operations.spaces import SpaceReport
    from ingestflow.store.vectors import VectorIndex

NAME_WIDTH = 48


def tail(name: str, width: int = NAME_WIDTH) -> str:
    """The end of a long name, where the file name is: "…/reports/2026/q3.pdf"."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def print_json(value: Any) -> None:
    """One JSON document on stdout: dataclasses, uuids, dates and Decimals as JSON values;
    characters beyond ASCII as \\u escapes, which any terminal or pipe encoding can carry."""
    def default(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        if hasattr(obj, "isoformat"):
            return obj.isoformat()
        return str(obj)

    print(json.dumps(value, default=default, indent=2))


def _table(title: str, columns: Iterable[str], *, right: Sequence[str] = ()) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left")
    return table


def ingest_summary(rows: list[dict[str, Any]], refused: list[Submitted]) -> None:
    table = _table("Ingest summary", ("document", "v", "stage", "chunks", "tokens", "note"),
                   right=("v", "chunks", "tokens"))
    for r in rows:
        note = ""
        if r["stage"] == Stage.FAILED:
            note = f"[red]{escape(r['error_code'])}: {escape(r['error_message'])}[/red]"
        elif r["stage"] != Stage.COMPLETE:
            note = f"waiting: {escape(r['deferred_reason'] or 'queued')}"
        elif r["degraded"]:
            note = "degraded (fallback; will be repaired)"
        table.add_row(escape(tail(r["source_name"])), str(r["version"]), r["stage"], str(r["chunks"]),
                      str(r["tokens"]), note)
    for s in refused:  # repr() shows control characters and undecodable bytes as escapes
        assert s.refused is not None
        table.add_row(escape(tail(repr(s.name)[1:-1])), "-", "refused", "-", "-",
                      f"[red]{escape(str(s.refused))}[/red]")
    console.print(table)
    failed = sum(r["stage"] == Stage.FAILED for r in rows)
    console.print(
        f"documents: {len(rows)}  complete: {sum(r['stage'] == Stage.COMPLETE for r in rows)}  "
        f"failed: {failed}  refused: {len(refused)}  chunks: {sum(r['chunks'] for r in rows)}  "
        f"tokens: {sum(r['tokens'] for r in rows)}"
    )


def search_result(query: str, result: SearchResult) -> None:
    for note in result.notes:
        console.print(f"[yellow]{escape(note)}[/yellow]")
    table = _table(f"Search ({result.mode}): {escape(repr(query))} ({result.provider}/{result.model})",
                   ("score", "document", "page", "section", "snippet"))
    for h in result.hits:
        name = tail(h.source_name) + (f" v{h.version}" if h.version > 1 else "")
        table.add_row(f"{h.score:.3f}", escape(name), ",".join(map(str, h.pages)) or "-",
                      escape(" > ".join(h.heading_path)) or "-", escape(h.snippet))
    console.print(table)


def documents(rows: list[dict[str, Any]]) -> None:
    table = _table("Documents", ("id", "document", "v", "stage", "chunks", "updated"), right=("v", "chunks"))
    for r in rows:
        table.add_row(str(r["id"])[:8], escape(tail(r["source_name"])), str(r["version"]), r["stage"],
                      str(r["chunks"]), f"{r['updated_at']:%Y-%m-%d %H:%M}")
    console.print(table)


def home(h: Home) -> None:
    console.print(f"home: {escape(str(h.path))}, {escape(h.origin)}", highlight=False, soft_wrap=True)


def overview(view: dict[str, Any]) -> None:
    home(view["home"])
    table = _table("Documents by stage", ("stage", "documents"), right=("documents",))
    for stage in Stage:
        if view["stages"].get(stage):
            table.add_row(stage, str(view["stages"][stage]))
    console.print(table)
    q = view["queue"]
    console.print(f"queue: {q['runnable']} runnable, {q['waiting']} waiting, {q['running']} running")
    w = view["workers"]
    console.print(f"workers: {w.count} alive" + "".join(
        f"\n  {x.host} pid {x.pid}: {x.slots} slots, {x.jobs_done} done, up since {x.started_at:%Y-%m-%d %H:%M:%S}"
        for x in w.alive), markup=False, highlight=False)
    warn(w.warning)
    sp = view["spaces"]
    console.print(f"search uses {sp['active'] or '(nothing embedded yet)'}", highlight=False)
    if sp["stale_chunking"]:
        console.print(f"{sp['stale_chunking']} current documents were chunked by an older rule or another chunk "
                      "size; `ingestflow reembed` re-chunks them (it shows the cost first)", highlight=False)
    if sp["switching"]:
        console.print(f"model change under way: {sp['configured']} covers {sp['covered']} of {sp['current']} "
                      f"current documents; {sp['open_batches']} batches open (`ingestflow reembed` for details)",
                      highlight=False)
    recent = _table("Recent documents", ("id", "document", "v", "stage", "job", "note"))
    for r in view["recent"]:
        recent.add_row(str(r["id"])[:8], escape(tail(r["source_name"])), str(r["version"]), r["stage"],
                       r["job_state"] or "", escape(r["error_code"] or r["deferred_reason"] or ""))
    console.print(recent)


def spaces(report: SpaceReport) -> None:
    """Which space search uses, the configured one's coverage, the cost of the rest."""
    c, e = report.coverage, report.estimate
    console.print(f"search uses:   {report.active.name if report.active else '(nothing embedded yet)'}",
                  highlight=False)
    console.print(f"configured:    {report.configured.name}: {c.covered} of {c.current} current documents, "
                  f"{c.missing_chunks} chunks ({c.missing_tokens} tokens) to embed", highlight=False)
    if e.chunks:
        batch = "" if e.batch_usd is None else f", ${float(e.batch_usd):.4f} through the Batch API"
        console.print(f"estimate:      ${float(e.sync_usd):.4f} synchronously{batch}", highlight=False)
    if (r := report.rechunk) is not None:
        batch = "" if r.batch_usd is None else f", ${float(r.batch_usd):.4f} through the Batch API"
        console.print(f"re-chunk:      {r.documents} documents chunked by another rule or size: {r.chunks} chunks "
                      f"({r.tokens} tokens), at most ${float(r.sync_usd):.4f} synchronously{batch} "
                      "(unchanged inputs reuse their vectors)", highlight=False)
    if report.reembed_jobs:
        console.print("re-embed jobs: " + ", ".join(f"{n} {state}" for state, n in sorted(report.reembed_jobs.items())),
                      highlight=False)
    if report.batches:
        table = _table("Batch API", ("batch", "status", "inputs", "embedded", "age", "error"),
                       right=("inputs", "embedded"))
        for b in report.batches:
            table.add_row(b["provider_batch_id"] or str(b["id"])[:8], f"{b['state']}/{b['status']}",
                          str(b["inputs"]), str(b["embedded"] if b["embedded"] is not None else ""),
                          _age(b["age_seconds"]), escape(b["error"] or ""))
        console.print(table)
    if report.others:
        table = _table("Other spaces (vectors of current documents)", ("id", "space", "vectors"), right=("vectors",))
        for space, n in report.others:
            table.add_row(str(space.id), space.name, str(n))
        console.print(table)


def _age(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


DETAIL_FIELDS = ("id", "stage", "mime", "size_bytes", "sha256", "parser", "degraded", "chunks",
                 "chunks_embedded", "tokens", "job_state", "attempts", "next_attempt_at", "deferred_reason",
                 "error_stage", "error_code", "error_message", "created_at", "updated_at")


def document(doc: dict[str, Any]) -> None:
    table = Table(title=f"Document {escape(tail(doc['source_name']))} v{doc['version']}", show_header=False)
    for key in DETAIL_FIELDS:
        if doc.get(key) not in (None, ""):
            table.add_row(key, escape(str(doc[key])))
    for c in doc["costs"]:
        table.add_row(f"cost {c['service']}",
                      f"${float(c['cost_usd']):.6f} ({c['units']} units, {c['calls']} calls)")
    console.print(table)
    events = _table("Recent events", ("time", "kind", "stage", "detail"))
    for e in doc["events"]:
        events.add_row(e["created_at"].strftime("%H:%M:%S"), e["kind"], e["stage"] or "",
                       escape(str(e["detail"])[:100]))
    console.print(events)


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def spend(s: Spend, days: list[dict[str, Any]], documents: list[dict[str, Any]]) -> None:
    table = _table(f"Spend (UTC windows; tracking {'on' if s.tracking else 'off'})",
                   ("service", "today $", "daily limit $", "this hour $", "requests this hour", "hourly limit"),
                   right=("today $", "daily limit $", "this hour $", "requests this hour", "hourly limit"))
    for r in s.services:
        table.add_row(r.service, f"{r.today_usd:.6f}", _money(r.daily_limit_usd), f"{r.hour_usd:.6f}",
                      str(r.hour_requests), "-" if r.hourly_request_limit is None else str(r.hourly_request_limit))
    table.add_row("total", f"{s.today_usd:.6f}", _money(s.daily_limit_total_usd), "", "", "")
    console.print(table)
    if days:
        by_day = _table("By day", ("day", "service", "cost $", "units", "requests"))
        for r in days:
            by_day.add_row(str(r["day"]), r["service"], f"{float(r['cost_usd']):.6f}", str(r["units"]),
                           str(r["requests"]))
        console.print(by_day)
    if documents:
        by_doc = _table("Top documents", ("document", "v", "service", "cost $", "units", "requests"))
        for r in documents:
            by_doc.add_row(escape(tail(r["source_name"])), str(r["version"]), r["service"],
                           f"{float(r['cost_usd']):.6f}", str(r["units"]), str(r["requests"]))
        console.print(by_doc)


def vector_indexes(rows: list[VectorIndex]) -> None:
    if not rows:
        return
    table = _table("Vector indexes", ("space", "model", "dims", "vectors", "index", "m / ef_construction", "size",
                                      "note"), right=("space", "dims", "vectors", "size"))
    for r in rows:
        if r.index is None:
            note = "none: searched exactly (under HNSW_MIN_VECTORS, or over 4,000 dimensions)"
        elif not r.valid:
            note = "[red]invalid[/red] or being built: rebuilt or renamed by index maintenance"
        elif r.outgrows_buffers:
            note = (f"[yellow]larger than shared_buffers ({r.shared_buffers // 2**20:,} MB)[/yellow]: searches "
                    "read graph pages from the OS cache, slower (README \"Scale\")")
        else:
            note = ""
        table.add_row(str(r.space_id), escape(f"{r.provider}/{r.model}"), str(r.dimensions),
                      "?" if r.vectors is None else f"{r.vectors:,}",
                      r.index or "-", "-" if r.index is None else f"{r.m} / {r.ef_construction}",
                      "-" if r.bytes is None else f"{r.bytes / 2**20:,.1f} MB", note)
    console.print(table)


def doctor(d: Doctor) -> None:
    config = Table(title="Configuration", show_header=False)
    for key, value in d.settings.items():
        config.add_row(key, escape(value))
    console.print(config)
    home(d.home)
    health = _table("Services", ("service", "mode", "provider", "healthy", "detail"))
    for h in d.services:
        health.add_row(h.service.name, h.service.mode, h.service.provider,
                       "[green]yes[/green]" if h.healthy else "[red]no[/red]", escape(h.detail))
    console.print(health)
    m = d.embedding_model
    console.print(f"embedding model: {m.provider}/{m.name}, {m.dimensions} dims, at most {m.max_input_tokens} "
                  f"{m.tokenizer} tokens per input (chunks up to {m.max_chunk_tokens} cl100k tokens), "
                  f"${m.usd_per_mtok}/M tokens (batch ${m.batch_usd_per_mtok})")
    c = d.chunking
    console.print(f"chunking: rule {c['rule']}, {c['max_tokens']} tokens, overlap {c['overlap_tokens']}; "
                  f"{d.stale_chunking[0]} of {d.stale_chunking[1]} current documents chunked otherwise"
                  + (" (`ingestflow reembed` re-chunks them)" if d.stale_chunking[0] else ""), highlight=False)
    console.print(f"database: PostgreSQL {d.server_version}, pgvector {d.pgvector_version} ({escape(d.database)})")
    console.print("embedded server self-check: "
                  + ("not applicable (DATABASE_URL is set)" if d.self_check is None else d.self_check))
    vector_indexes(d.vector_indexes)
    for b in d.breakers:
        since = f", open since {b['opened_at']:%H:%M:%S}" if b["opened_at"] and b["state"] != "closed" else ""
        console.print(f"breaker {b['service']}: {b['state']} ({b['consecutive_failures']} consecutive failures{since})")
    spend(d.spend, [], [])
