"""``ingestflow`` commands. Each opens the same runtime as the API and the workers."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Annotated, Any

import typer
from psycopg.rows import dict_row
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingestflow.cli import keys as keys_cli
from ingestflow.cli.common import console, run, settings_or_exit
from ingestflow.pipeline.ingest import Submitted, submit_files
from ingestflow.runtime import Runtime
from ingestflow.search import search as run_search
from ingestflow.store import database
from ingestflow.store.sql import query

app = typer.Typer(help="Documents to searchable pgvector embeddings.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_cli.app, name="keys")

TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant the documents belong to.")]
PROGRESS_STAGES = (("parsed", "parse"), ("chunked", "chunk"), ("embedded", "embed"), ("complete", "store"))
STAGE_RANK = {s: i for i, s in enumerate(
    ("queued", "parsing", "parsed", "chunking", "chunked", "embedding", "embedded", "complete"))}


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files and folders (recursive).")],
    tenant: TenantOpt = "default",
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Only enqueue; workers do the rest.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="In-process worker slots.")] = 2,
    server: Annotated[str | None, typer.Option(
        "--server", envvar="INGESTFLOW_SERVER", help="Upload to this API server instead of running here.")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="INGESTFLOW_API_KEY", help="API key for --server.")] = None,
) -> None:
    """Ingest documents: run the pipeline here with progress, only enqueue them, or upload
    them to a remote deployment (--server) and follow their progress.

    Exits 1 when a file was refused or a document failed (or, waiting, did not complete),
    2 when a path does not exist.
    """
    if server is not None:
        if not api_key:
            console.print("[red]--api-key (or INGESTFLOW_API_KEY) is required with --server[/red]")
            raise typer.Exit(2)
        from ingestflow.cli.remote import ingest_remote

        raise typer.Exit(ingest_remote(server, api_key, paths, console, wait=not no_wait))

    async def body(rt: Runtime) -> int:
        try:
            submitted = await submit_files(rt.db, rt.files, paths, tenant=tenant)
        except FileNotFoundError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            return 2
        registered = [s.registration for s in submitted if s.registration is not None]
        refused = [s for s in submitted if s.refused is not None]
        ids = [r.document_id for r in registered]
        new = sum(not r.duplicate for r in registered)
        console.print(f"{len(submitted)} files: {new} new, {len(registered) - new} unchanged, "
                      f"{len(refused)} refused")
        if not no_wait and ids:
            await _work_with_progress(rt, ids, concurrency)
        rows = await _progress_rows(rt, ids)
        _print_summary(rows, refused)
        unfinished = not no_wait and any(r["stage"] != "complete" for r in rows)
        return 1 if refused or unfinished or any(r["stage"] == "failed" for r in rows) else 0

    raise typer.Exit(run(body, pool_size=concurrency + 4, quiet=not no_wait))


async def _progress_rows(rt: Runtime, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    async with rt.db.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query("document_progress"), {"ids": ids})
        return await cur.fetchall()


async def _work_with_progress(rt: Runtime, ids: list[uuid.UUID], concurrency: int) -> None:
    worker = rt.drain(ids, concurrency)
    with Progress(
        TextColumn("{task.description:>6}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    ) as progress:
        tasks = {stage: progress.add_task(label, total=len(ids)) for stage, label in PROGRESS_STAGES}
        work = asyncio.create_task(worker.run())
        while True:
            rows = await _progress_rows(rt, ids)
            for stage, task in tasks.items():
                done = sum(STAGE_RANK.get(r["stage"], -1) >= STAGE_RANK[stage] or r["stage"] == "failed"
                           for r in rows)
                progress.update(task, completed=done)
            if work.done():
                break
            await asyncio.sleep(0.2)
        await work


def _print_summary(rows: list[dict[str, Any]], refused: list[Submitted]) -> None:
    """Names and messages are escaped: a file name like "[/]" is text, not Rich markup."""
    table = Table(title="Ingest summary")
    for col in ("document", "v", "stage", "chunks", "tokens", "note"):
        table.add_column(col, justify="right" if col in ("v", "chunks", "tokens") else "left")
    failures = 0
    for r in rows:
        note = ""
        if r["stage"] == "failed":
            failures += 1
            note = f"[red]{escape(r['error_code'])}: {escape(r['error_message'])}[/red]"
        elif r["stage"] != "complete":
            note = f"waiting: {escape(r['deferred_reason'] or 'queued')}"
        elif r["degraded"]:
            note = "degraded (fallback; will be repaired)"
        table.add_row(escape(r["source_name"]), str(r["version"]), r["stage"], str(r["chunks"]),
                      str(r["tokens"]), note)
    for s in refused:  # repr() shows control characters and undecodable bytes as escapes
        error = s.refused
        table.add_row(escape(repr(s.name)[1:-1]), "-", "refused", "-", "-",
                      f"[red]{error.code}: {escape(error.message)}[/red]" if error else "")
    console.print(table)
    console.print(
        f"documents: {len(rows)}  complete: {sum(r['stage'] == 'complete' for r in rows)}  "
        f"failed: {failures}  refused: {len(refused)}  chunks: {sum(r['chunks'] for r in rows)}  "
        f"tokens: {sum(r['tokens'] for r in rows)}"
    )


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many passages.")] = 5,
    tenant: TenantOpt = "default",
) -> None:
    """Search the current versions of all complete documents."""

    async def body(rt: Runtime) -> None:
        result = await run_search(rt.db, rt.services, text, k=k, tenant=tenant)
        hits = result.hits
        for note in result.notes:
            console.print(f"[yellow]{note}[/yellow]")
        table = Table(title=f"Search: {text!r} ({result.provider}/{result.model})")
        for col in ("score", "document", "page", "snippet"):
            table.add_column(col)
        for h in hits:
            snippet = " ".join(h.text.split())[:160]
            table.add_row(f"{h.score:.3f}", h.source_name, ",".join(map(str, h.pages)) or "-", snippet)
        console.print(table)

    run(body)


@app.command()
def status(
    document: Annotated[str | None, typer.Argument(help="Document id (or prefix) or source name.")] = None,
    tenant: TenantOpt = "default",
) -> None:
    """Documents by stage, or one document's details and recent events."""

    async def body(rt: Runtime) -> None:
        async with rt.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            if document is None:
                await cur.execute(query("stage_counts"), {"tenant": tenant})
                counts = {r["stage"]: r["documents"] for r in await cur.fetchall()}
                table = Table(title="Documents by stage")
                table.add_column("stage")
                table.add_column("documents", justify="right")
                for stage in (*STAGE_RANK, "failed"):
                    if counts.get(stage):
                        table.add_row(stage, str(counts[stage]))
                console.print(table)
                await cur.execute(query("recent_documents"), {"tenant": tenant, "limit": 20})
                recent = Table(title="Recent documents")
                for col in ("id", "document", "v", "stage", "job", "note"):
                    recent.add_column(col)
                for r in await cur.fetchall():
                    note = r["error_code"] or r["deferred_reason"] or ""
                    recent.add_row(str(r["id"])[:8], r["source_name"], str(r["version"]), r["stage"],
                                   r["job_state"] or "", note)
                console.print(recent)
                return
            await cur.execute(query("find_document"),
                              {"tenant": tenant, "prefix": f"{document}%", "name": document})
            doc = await cur.fetchone()
            if doc is None:
                console.print(f"[red]no document {document!r}[/red]")
                raise typer.Exit(1)
            table = Table(title=f"Document {doc['source_name']} v{doc['version']}", show_header=False)
            for key in ("id", "stage", "mime", "size_bytes", "sha256", "parser", "degraded", "chunks",
                        "tokens", "job_state", "attempts", "next_attempt_at", "deferred_reason",
                        "error_stage", "error_code", "error_message", "created_at", "updated_at"):
                if doc.get(key) not in (None, ""):
                    table.add_row(key, str(doc[key]))
            await cur.execute(query("document_cost"), {"document_id": doc["id"]})
            for c in await cur.fetchall():
                table.add_row(f"cost {c['service']}", f"${float(c['cost_usd']):.6f} ({c['units']} units, {c['calls']} calls)")
            console.print(table)
            await cur.execute(query("document_events"), {"document_id": doc["id"], "limit": 15})
            events = Table(title="Recent events")
            for col in ("time", "kind", "stage", "detail"):
                events.add_column(col)
            for e in await cur.fetchall():
                events.add_row(e["created_at"].strftime("%H:%M:%S"), e["kind"], e["stage"] or "",
                               str(e["detail"])[:100])
            console.print(events)

    run(body)


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs in parallel in this process.")] = None,
) -> None:
    """Claim and run jobs until stopped (SIGTERM/SIGINT release the current jobs cleanly)."""

    async def body(rt: Runtime) -> None:
        w = rt.worker(concurrency)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, w.request_stop)
        await w.run()

    run(body, pool_size=(concurrency or 2) + 4)


@app.command()
def retry(
    document: Annotated[str, typer.Argument(help="Document id (or prefix) or source name.")],
    tenant: TenantOpt = "default",
) -> None:
    """Queue a failed document again from its first stage."""
    from ingestflow.store import documents

    async def body(rt: Runtime) -> None:
        async with rt.db.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(query("find_document"),
                              {"tenant": tenant, "prefix": f"{document}%", "name": document})
            doc = await cur.fetchone()
            if doc is None or doc["stage"] != "failed":
                console.print(f"[red]no failed document {document!r}[/red]")
                raise typer.Exit(1)
            await documents.requeue(conn, doc["id"], reason="retry requested")
        console.print(f"queued {doc['source_name']} again")

    run(body)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the HTTP API: uploads, documents, search, costs, webhooks, metrics, dashboard."""
    from ingestflow.api import serve as serve_api

    settings = settings_or_exit()
    serve_api(settings, host, port, max_upload_bytes=settings.max_upload_bytes,
              max_concurrent_jobs=settings.api_max_concurrent_jobs,
              uploads_per_day=settings.api_uploads_per_day)


@db_app.command("index")
def db_index(
    min_vectors: Annotated[int, typer.Option(help="Only spaces with at least this many vectors.")] = 1,
) -> None:
    """Build the HNSW index of every embedding space that lacks one, now (workers otherwise
    build it once a space reaches HNSW_MIN_VECTORS)."""
    from ingestflow.cli.common import database_url_or_exit
    from ingestflow.store import vectors

    settings = settings_or_exit()
    built = asyncio.run(vectors.build_indexes(database_url_or_exit(settings), min_vectors=min_vectors))
    console.print(f"built HNSW indexes for spaces {built}" if built else "no index to build")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations (idempotent; also done at every start)."""
    from ingestflow.cli.common import database_url_or_exit

    settings = settings_or_exit()
    applied = database.migrate(database_url_or_exit(settings))
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@app.command()
def doctor() -> None:
    """Configuration (secrets masked), modes, health, database, budget and breakers.

    Exits 1 when a service configured as REAL is unusable, 2 on invalid configuration.
    """
    from ingestflow.config import ServiceMode

    async def body(rt: Runtime) -> int:
        s = rt.settings
        config = Table(title="Configuration", show_header=False)
        for key, value in s.model_dump().items():
            config.add_row(key, str(value))  # SecretStr prints as '**********'
        console.print(config)
        problems = 0
        health = Table(title="Services")
        for col in ("service", "mode", "provider", "healthy", "detail"):
            health.add_column(col)
        checks = [
            ("embeddings", s.embeddings_service_mode, f"{rt.services.embedder.provider}/{rt.services.embedder.model}",
             rt.services.embedder),
            ("parser", s.parser_service_mode, rt.services.parser.name, rt.services.parser),
        ]
        for name, mode, provider, service in checks:
            ok, detail = await service.health()
            if not ok and mode is ServiceMode.REAL:
                problems += 1
            health.add_row(name, mode.value, provider, "[green]yes[/green]" if ok else "[red]no[/red]", detail)
        console.print(health)
        async with rt.db.pool.connection() as conn:
            version = (await (await conn.execute("SHOW server_version")).fetchone())[0]
            pgvector = (await (await conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'")).fetchone())[0]
            breakers = await (await conn.execute(query("breaker_states"))).fetchall()
        where = "DATABASE_URL" if s.database_url else f"embedded under {s.home}"
        console.print(f"database: PostgreSQL {version}, pgvector {pgvector} ({where})")
        if s.database_url:
            check = "not applicable (DATABASE_URL is set)"
        else:  # run when the runtime opened; a failed check stops the command before this
            ok, detail = database.embedded_check
            check = f"{'ok' if ok else 'failed'} ({detail})"
        console.print(f"embedded server self-check: {check}")
        for service, state, failures, opened_at in breakers:
            since = f", open since {opened_at:%H:%M:%S}" if opened_at and state != "closed" else ""
            console.print(f"breaker {service}: {state} ({failures} consecutive failures{since})")
        await _print_costs(rt, tenant=None, by_document=False)
        return 1 if problems else 0

    raise typer.Exit(run(body))


async def _print_costs(rt: Runtime, *, tenant: str | None, by_document: bool = True) -> None:
    s = rt.settings
    limits = {"openai": (s.daily_cost_limit_openai, s.hourly_rate_limit_openai),
              "llamaparse": (s.daily_cost_limit_llamaparse, s.hourly_rate_limit_llamaparse)}
    async with rt.db.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query("costs_summary"), {"tenant": tenant})
        summary = {r["service"]: r for r in await cur.fetchall()}
        await cur.execute(query("costs_by_day"), {"tenant": tenant, "limit": 14})
        days = await cur.fetchall()
        docs = []
        if by_document:
            await cur.execute(query("costs_by_document"), {"tenant": tenant, "document_id": None, "limit": 10})
            docs = await cur.fetchall()
    table = Table(title=f"Spend (UTC windows; tracking {'on' if s.cost_tracking_enabled else 'off'})")
    for col in ("service", "today $", "daily limit $", "this hour $", "requests this hour", "hourly limit"):
        table.add_column(col, justify="right" if col != "service" else "left")
    today_total = 0.0
    for service, (daily, hourly) in limits.items():
        row = summary.get(service, {})
        today = float(row.get("today_usd", 0))
        today_total += today
        table.add_row(service, f"{today:.6f}", "-" if daily is None else f"{daily:.2f}",
                      f"{float(row.get('hour_usd', 0)):.6f}", str(row.get("hour_requests", 0)),
                      "-" if hourly is None else str(hourly))
    total_limit = s.daily_cost_limit_total
    table.add_row("total", f"{today_total:.6f}", "-" if total_limit is None else f"{total_limit:.2f}", "", "", "")
    console.print(table)
    if days:
        by_day = Table(title="By day")
        for col in ("day", "service", "cost $", "units", "requests"):
            by_day.add_column(col)
        for r in days:
            by_day.add_row(str(r["day"]), r["service"], f"{float(r['cost_usd']):.6f}", str(r["units"]), str(r["requests"]))
        console.print(by_day)
    if docs:
        by_doc = Table(title="Top documents")
        for col in ("document", "v", "service", "cost $", "units", "requests"):
            by_doc.add_column(col)
        for r in docs:
            by_doc.add_row(r["source_name"], str(r["version"]), r["service"], f"{float(r['cost_usd']):.6f}",
                           str(r["units"]), str(r["requests"]))
        console.print(by_doc)


@app.command()
def costs(tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None) -> None:
    """Spend today, this hour, by service, by day and by document, against the limits."""

    async def body(rt: Runtime) -> None:
        await _print_costs(rt, tenant=tenant)

    run(body)


@app.command("fake-providers")
def fake_providers(
    openai_port: Annotated[int, typer.Option(help="Port of the fake OpenAI API.")] = 8081,
    llamaparse_port: Annotated[int, typer.Option(help="Port of the fake LlamaParse API.")] = 8082,
    api_key: Annotated[str, typer.Option(help="Key both fakes accept.")] = "sk-fake",
    rpm: Annotated[int | None, typer.Option(help="Fake OpenAI requests-per-minute limit.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Fake OpenAI tokens-per-minute limit.")] = None,
) -> None:
    """Run the fake OpenAI and LlamaParse servers on loopback until Ctrl-C.

    Point a deployment at them (OPENAI_API_URL, LLAMAPARSE_BASE_URL) to test it without
    paying; inject faults with POST /_control/faults on either server.
    """
    import time

    from ingestflow.testing import FakeLlamaParse, FakeOpenAI

    with FakeOpenAI(api_key=api_key, rpm=rpm, tpm=tpm, port=openai_port) as openai_fake, \
            FakeLlamaParse(api_key=api_key, port=llamaparse_port) as llama_fake:
        console.print(f"fake OpenAI:     OPENAI_API_URL={openai_fake.url}")
        console.print(f"fake LlamaParse: LLAMAPARSE_BASE_URL={llama_fake.url}")
        console.print('faults: curl -X POST .../_control/faults -d \'{"inject": ["429", "nan"]}\'')
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
