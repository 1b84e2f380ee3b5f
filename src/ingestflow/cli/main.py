"""``ingestflow`` commands. Each opens the same runtime as the API and the workers and calls
the same operations (ingestflow.operations), so the two faces cannot disagree.

This module imports nothing but Typer and the standard library: every command imports
what it uses when it runs, so ``--help`` starts at once and ``status`` never loads the
OpenAI SDK, FastAPI or the tokenizer. Help is plain text (no Rich markup) for the same
reason. A command that uses the database calls ``start_database()`` before those imports:
the embedded server starts in the background while they load.
"""
# Without ``from __future__ import annotations``: Typer reads the annotations of every
# command at each run, and as strings each costs an eval (~500 of them, ~15 ms).

import io
import signal
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ingestflow.cli.keys import app as keys_app
from ingestflow.cli.options import JsonOpt, ModeOpt, TenantFilterOpt, TenantOpt
from ingestflow.lifecycle import Stage

app = typer.Typer(help="Documents to searchable pgvector embeddings.", no_args_is_help=True,
                  rich_markup_mode=None, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")


def main() -> None:
    """The ``ingestflow`` script. With --json, an error in the command line itself (an
    unknown option, a bad value) follows the contract as every other error does:
    ``{"error": {"code": "invalid_request", "message"}}`` on stderr, exit 2. Without it,
    Click's own usage text."""
    if "--json" not in sys.argv[1:]:
        app(prog_name="ingestflow")
        return
    try:
        code = app(prog_name="ingestflow", standalone_mode=False)
    except typer.TyperException as exc:
        import json

        print(json.dumps({"error": {"code": "invalid_request", "message": exc.format_message()}}), file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _print_version(asked: bool) -> None:
    if asked:
        from ingestflow import __version__

        typer.echo(f"ingestflow {__version__}")
        raise typer.Exit()


@app.callback()
def every_command(
    _version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                           help="Print the version and exit.")] = False,
) -> None:
    """A terminal or pipe whose encoding cannot show a document's name (ASCII, Latin-1,
    a Windows code page) gets "?" for those characters instead of a crash mid-table.

    SIGTERM ends a command as an exit does, running the exit hooks (the embedded server's
    stop, when this process is its last user); its default action skips them. ``serve``
    relies on this too: uvicorn re-raises the SIGTERM it caught once it has shut down."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files and folders (recursive).")],
    tenant: TenantOpt = "default",
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Only enqueue; workers do the rest.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="In-process worker slots.")] = 2,
    prefix: Annotated[str, typer.Option(help="Put this in front of every source name.")] = "",
    source_name: Annotated[str | None, typer.Option(help="Name the one file given this way.")] = None,
    batch: Annotated[bool, typer.Option(
        "--batch", help="Embed through the OpenAI Batch API: half the price, within 24 hours.")] = False,
    server: Annotated[str | None, typer.Option(
        "--server", envvar="INGESTFLOW_SERVER", help="Upload to this API server instead of running here.")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="INGESTFLOW_API_KEY", help="API key for --server.")] = None,
    sync: Annotated[bool, typer.Option(
        "--sync", help="Then delete the documents of these folders whose files are gone (asks first).")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="With --sync: delete without asking.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest documents: run the pipeline here with progress, only enqueue them, or upload
    them to a remote deployment (--server) and follow their progress.

    A file in a folder you give is named by its path relative to that folder; a file you
    give directly, by its file name; inside the project folder (the one holding .ingestflow),
    by its path relative to that folder, however it was reached. --sync keeps folders in
    sync: documents named as a file of theirs would be, whose file is gone, are deleted
    after a count and a question (--yes: without; with --json and no --yes, only counted).
    With --batch, documents wait for the Batch API after chunking; a worker stores their
    vectors when it answers. Exits 1 when a file was
    refused or a document failed (or, waiting, did not complete or reach its batch), 2 when
    a path does not exist. With --json, no progress is drawn: stdout holds one summary of
    the documents (id, version, stage, chunks, cost, error).
    """
    if server is not None:
        from ingestflow.cli.common import fail
        from ingestflow.cli.remote import ingest_remote

        if not api_key:
            fail("--api-key (or INGESTFLOW_API_KEY) is required with --server", 2)
        raise typer.Exit(ingest_remote(server, api_key, paths, wait=not no_wait, prefix=prefix,
                                       source_name=source_name, batch=batch, as_json=as_json, sync=sync, yes=yes))
    from ingestflow.cli.common import start_database

    start_database()
    from ingestflow.cli.ingesting import ingest_here

    raise typer.Exit(ingest_here(paths, tenant=tenant, wait=not no_wait, concurrency=concurrency,
                                 prefix=prefix, source_name=source_name, batch=batch, as_json=as_json,
                                 sync=sync, yes=yes))


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many passages (1-100).")] = 5,
    mode: ModeOpt = None,
    min_score: Annotated[float | None, typer.Option(
        "--min-score", help="Leave out passages scoring less (0-1); none left: no answer. Default: the "
        "model's (SEARCH_MIN_SCORE).")] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Search the current versions of all complete documents (by meaning and by keyword)."""
    from ingestflow.cli.common import refuse, run, start_database
    from ingestflow.operations.bounds import Filters, check_arguments
    from ingestflow.operations.errors import Refused

    try:  # the arguments, by the rule every face uses, before the database starts
        check_arguments(text, k, mode, Filters(), min_score)
    except Refused as exc:
        refuse(exc)
    start_database()
    from ingestflow.cli import render
    from ingestflow.operations.search import search as run_search

    result = run(lambda rt: run_search(rt, tenant, text, k=k, mode=mode, min_score=min_score))
    if as_json:
        render.print_json(result)
    else:
        render.search_result(text, result)


@app.command()
def status(
    document: Annotated[str | None, typer.Argument(help="Document id (or prefix) or source name.")] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Documents by stage (and which home is used, and how it was found), or one
    document's details and recent events."""
    from ingestflow.cli.common import run, start_database

    start_database()
    from ingestflow.cli import render
    from ingestflow.operations import documents
    from ingestflow.runtime import Runtime

    async def body(rt: Runtime) -> dict:
        if document is None:
            return {**await documents.overview(rt, tenant), "home": rt.settings.located_home}
        found = await documents.find(rt, tenant, document)
        return await documents.describe(rt, tenant, found["id"])

    result = run(body)
    if as_json:
        render.print_json(result)
    elif document is None:
        render.overview(result)
    else:
        render.document(result)


@app.command()
def reembed(
    tenant: TenantOpt = "default",
    yes: Annotated[bool, typer.Option("--yes", help="Start re-embedding (after showing the estimate).")] = False,
    batch: Annotated[bool, typer.Option(
        "--batch", help="Through the OpenAI Batch API: half the price, done within 24 hours.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Only queue the work; workers do it.")] = False,
    drop_space: Annotated[int | None, typer.Option(
        "--drop-space", help="Delete the tenant's vectors in this old space (its id, as listed).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """After changing the embedding model or how documents are chunked: embed every current
    document with the configured model, re-chunking those cut by an older rule or size.
    Shows what it would cost first; --yes starts it, with progress. Search keeps answering
    from what there was until the new vectors cover every current document, then switches."""
    from ingestflow.cli.common import console, run, start_database

    start_database()
    from ingestflow.cli import render
    from ingestflow.cli.ingesting import work_with_progress
    from ingestflow.operations import spaces
    from ingestflow.runtime import Runtime

    async def body(rt: Runtime) -> dict:
        dropped = await spaces.drop_space(rt, tenant, drop_space) if drop_space is not None else None
        if yes and not as_json:  # what it will cost, before the work starts
            render.spaces(await spaces.report(rt, tenant))
        queued = await spaces.start_reembed(rt, tenant, batch_api=batch) if yes else []
        if queued and not no_wait:
            if as_json:
                await rt.drain(queued).run()
            else:  # re-chunked versions move through chunk, embed and store: a bar for each
                await work_with_progress(rt, tenant, queued, rt.settings.worker_concurrency)
        return {"report": await spaces.report(rt, tenant), "queued": len(queued), "dropped": dropped}

    result = run(body, quiet=True)
    if as_json:
        render.print_json(result)
        return
    render.spaces(result["report"])
    if result["dropped"] is not None:
        console.print(f"dropped {result['dropped']} vectors of space {drop_space}")
    if yes:
        console.print(f"queued {result['queued']} documents", highlight=False)
    elif result["report"].coverage.missing_chunks or result["report"].rechunk:
        console.print("run again with --yes to start (--batch: half the price, within 24 hours)")


@app.command()
def retry(
    document: Annotated[str, typer.Argument(help="Document id (or prefix) or source name.")],
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Queue a failed document again from its first stage."""
    from ingestflow.cli.common import console, run, start_database, warn

    start_database()
    from ingestflow.cli import render
    from ingestflow.operations import documents, workers
    from ingestflow.runtime import Runtime

    async def body(rt: Runtime) -> tuple[dict, str | None]:
        found = await documents.find(rt, tenant, document)
        await documents.retry(rt, tenant, found["id"])
        return found, await workers.warning_for(rt, [found["id"]])

    found, warning = run(body)
    if as_json:
        render.print_json({"id": found["id"], "source_name": found["source_name"], "version": found["version"],
                           "stage": Stage.QUEUED, "warning": warning})
    else:
        console.print(f"queued {found['source_name']} v{found['version']} again", markup=False, highlight=False)
        warn(warning)


@app.command("documents")
def documents_(
    stage: Annotated[str | None, typer.Option(
        help="Only documents in this stage (superseded: the older versions): "
             f"{', '.join(Stage)}.")] = None,
    tenant: TenantOpt = "default",
    limit: Annotated[int, typer.Option(help="At most this many (1-500), newest first.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="The page after the one that printed this cursor.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Current documents, newest first: id, name, version, stage, chunks, last change.
    A listing cut at --limit says how many there are and how to list the next page
    (with --json: total and next_cursor)."""
    from ingestflow.cli.common import refuse, run, start_database
    from ingestflow.operations.bounds import check_stage
    from ingestflow.operations.errors import Refused

    try:  # by the rule every face uses, before the database starts
        stage = check_stage(stage)
    except Refused as exc:
        refuse(exc)
    start_database()
    from ingestflow.cli import render
    from ingestflow.operations import documents
    from ingestflow.runtime import Runtime

    async def body(rt: Runtime) -> tuple[documents.Page, int]:
        page = await documents.page(rt, tenant, stage=stage, cursor=cursor, limit=limit)
        return page, await documents.count(rt, tenant, stage=stage)

    page, total = run(body)
    if as_json:
        render.print_json({"documents": page.items, "total": total, "next_cursor": page.next_cursor})
        return
    render.documents(page.items)
    if len(page.items) < total:  # names, stages and cursors need no shell quoting
        given = [f"--stage {stage}"] if stage else []
        given += [f"--tenant {tenant}"] if tenant != "default" else []
        render.page_note(len(page.items), total, page.next_cursor and " ".join(
            ["ingestflow documents", *given, f"--limit {limit}", f"--cursor {page.next_cursor}"]))


@app.command()
def delete(
    document: Annotated[str, typer.Argument(help="Document id (or prefix) or source name.")],
    tenant: TenantOpt = "default",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a document's source, every version: chunks, vectors, texts, events, jobs and
    stored bytes (unless another document has the same content); the cost ledger keeps
    amounts, never text. Asks first, unless --yes or --json."""
    from ingestflow.cli.common import console, run, start_database

    start_database()
    from ingestflow.cli import render
    from ingestflow.operations import documents
    from ingestflow.runtime import Runtime

    async def body(rt: Runtime) -> dict:
        found = await documents.find(rt, tenant, document)
        if not (yes or as_json):
            # a prompt in the event loop is fine: nothing else runs in this process meanwhile
            typer.confirm(f"delete {found['source_name']} and every version of it "
                          f"({found['id']} is v{found['version']})?", abort=True)
        return {**found, "versions": await documents.delete(rt, tenant, found["id"])}

    found = run(body)
    if as_json:
        render.print_json({"id": found["id"], "source_name": found["source_name"], "version": found["version"],
                           "versions_deleted": found["versions"], "deleted": True})
    else:
        versions = found["versions"]
        console.print(f"deleted {found['source_name']} ({versions} version{'s' if versions > 1 else ''})",
                      markup=False, highlight=False)


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Jobs in parallel in this process.")] = None,
) -> None:
    """Claim and run jobs until stopped (SIGTERM/SIGINT release the current jobs cleanly)."""
    import asyncio

    from ingestflow.cli.common import run, settings_or_exit, start_database

    start_database()
    from ingestflow.runtime import Runtime, worker_pool_size

    async def body(rt: Runtime) -> None:
        w = rt.worker(concurrency)
        rt.warm_up()  # what jobs need, loaded now rather than inside the first job
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, w.request_stop)
        async with rt.sharing_model():
            await w.run()

    run(body, pool_size=worker_pool_size(concurrency or settings_or_exit().worker_concurrency), long_running=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int | None, typer.Option(
        min=0, help="Worker slots run in this process (default WORKER_CONCURRENCY); 0: API only, "
                    "separate `ingestflow worker` processes do the work.")] = None,
) -> None:
    """Run the HTTP API (uploads, documents, search, costs, webhooks, metrics, dashboard) and,
    unless --workers 0, a worker in the same process that processes what is uploaded."""
    import socket

    from ingestflow.api import serve as serve_api
    from ingestflow.cli.common import fail, say_home_opened, settings_or_exit

    settings = settings_or_exit()
    # uvicorn binds after the start-up (database, worker, model): a port in use would end
    # it only then, with exit 3. Checked first, as uvicorn binds (SO_REUSEADDR).
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server there? choose --port)", 2,
             error="address_in_use")
    say_home_opened(settings)
    serve_api(settings, host, port, workers=settings.worker_concurrency if workers is None else workers)


@app.command()
def mcp(
    port: Annotated[int | None, typer.Option(help="Serve streamable HTTP on this port (API keys required) "
                                                  "instead of stdio.")] = None,
    host: Annotated[str, typer.Option(help="With --port: the address to listen on.")] = "127.0.0.1",
    tenant: TenantOpt = "default",
) -> None:
    """A Model Context Protocol server for agents: tools search, ingest, status,
    list_documents and get_document. Over stdio (the default) it acts for --tenant; over
    HTTP (--port) each request's API key decides the tenant, as the HTTP API does."""
    from ingestflow.cli.common import run, start_database

    start_database()
    from ingestflow.integrations.mcp import RequireKey, Tools
    from ingestflow.runtime import Runtime

    async def body(rt: Runtime) -> None:
        server = Tools(rt, tenant).server()
        if port is None:
            await server.run_stdio_async()
            return
        import uvicorn

        app = RequireKey(server.streamable_http_app(stateless_http=True, json_response=True, host=host), rt)
        await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).serve()

    run(body, quiet=True, long_running=port is not None)


@app.command()
def costs(
    tenant: TenantFilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Spend today, this hour, by service, by day and by document, against the limits."""
    from ingestflow.cli.common import run, start_database

    start_database()
    from ingestflow.cli import render
    from ingestflow.operations import costs as spend
    from ingestflow.runtime import Runtime

    async def body(rt: Runtime) -> dict:
        return {"spend": await spend.spend(rt, tenant), "by_day": await spend.by_day(rt, tenant, 14),
                "by_document": await spend.by_document(rt, tenant)}

    result = run(body)
    if as_json:
        render.print_json(result)
    else:
        render.spend(result["spend"], result["by_day"], result["by_document"])


@app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Configuration (secrets masked), the home and how it was found, modes, health,
    database, budget and breakers.

    Exits 1 when a service configured as REAL is unusable, 2 on invalid configuration
    (which it explains: what is wrong, where the settings were read, the way out).
    """
    from ingestflow.cli.common import explain_configuration, run, start_database

    explain_configuration()
    start_database()
    from ingestflow.cli import render
    from ingestflow.operations import health

    report = run(health.doctor)
    if as_json:
        render.print_json(report)
    else:
        render.doctor(report)
    raise typer.Exit(1 if report.problems else 0)


@db_app.command("index")
def db_index(
    min_vectors: Annotated[int, typer.Option(help="Only spaces with at least this many vectors.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Build the HNSW index of every embedding space that lacks one, now (workers otherwise
    build it once a space reaches HNSW_MIN_VECTORS)."""
    import asyncio

    from ingestflow.cli.common import console, database_url_or_exit, settings_or_exit
    from ingestflow.store import vectors

    settings = settings_or_exit()
    policy = vectors.IndexPolicy.of(settings, min_vectors)
    built = asyncio.run(vectors.build_indexes(database_url_or_exit(settings), policy))
    if as_json:
        from ingestflow.cli.render import print_json

        print_json({"built": built})
    else:
        console.print(f"built HNSW indexes for spaces {built}" if built else "no index to build")


@db_app.command("migrate")
def db_migrate(as_json: JsonOpt = False) -> None:
    """Apply pending schema migrations (idempotent; also done at every start)."""
    from ingestflow.cli.common import console, database_url_or_exit, settings_or_exit
    from ingestflow.store import database

    applied = database.migrate(database_url_or_exit(settings_or_exit()))
    if as_json:
        from ingestflow.cli.render import print_json

        print_json({"applied": applied})
    else:
        console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@db_app.command("backup")
def db_backup(
    file: Annotated[Path, typer.Argument(help="The archive to write (replaced if it exists).")],
    as_json: JsonOpt = False,
) -> None:
    """Write the home's database and stored files to FILE, consistent while workers run."""
    from ingestflow.cli.common import console, database_url_or_exit, fail, settings_or_exit
    from ingestflow.store import backup

    settings = settings_or_exit()
    database_url_or_exit(settings)  # an embedded server that cannot start is said as every command says it
    try:
        report = backup.backup(settings, file)
    except backup.BackupError as exc:
        fail(str(exc), 1, error=exc.code)
    if as_json:
        from ingestflow.cli.render import print_json

        print_json(report)
    else:
        console.print(f"backed up to {report.path}: {report.files} stored file(s), {report.bytes:,} bytes",
                      markup=False, highlight=False)


@db_app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="An archive written by `ingestflow db backup`.")],
    as_json: JsonOpt = False,
) -> None:
    """Load a backup into this home, which must be new (no documents, keys or costs)."""
    from ingestflow.cli.common import console, database_url_or_exit, fail, settings_or_exit
    from ingestflow.store import backup

    settings = settings_or_exit()
    database_url_or_exit(settings)
    try:
        manifest = backup.restore(settings, file)
    except backup.BackupError as exc:
        fail(str(exc), 1, error=exc.code)
    if as_json:
        from ingestflow.cli.render import print_json

        print_json({"restored": manifest})
    else:
        console.print(f"restored the backup of {manifest['created_at']} ({manifest['files']} stored file(s))",
                      markup=False, highlight=False)


@db_app.command("stop")
def db_stop(as_json: JsonOpt = False) -> None:
    """Stop the home's embedded server now, rather than EMBEDDED_SERVER_LINGER_SECONDS after
    the last command. Exits 1 while a process (a worker, serve) uses it."""
    from ingestflow.cli.common import console, fail, settings_or_exit
    from ingestflow.store import embedded

    settings = settings_or_exit()
    if settings.database_url is not None:
        fail("DATABASE_URL is set: no embedded server to stop", 1, error="invalid_request")
    stopped = embedded.stop(settings)
    if stopped is False:
        fail(f"the embedded server under {settings.home} is in use (by a worker, `ingestflow serve` or a command "
             "still running): stop those first", 1, error="conflict")
    if as_json:
        from ingestflow.cli.render import print_json

        print_json({"home": settings.home, "stopped": bool(stopped)})
    else:
        console.print(f"stopped the embedded server under {settings.home}" if stopped
                      else f"no embedded server running under {settings.home}", markup=False, highlight=False)


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="The project folder (the working folder by default).")] = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Create a home (a .ingestflow folder) in FOLDER: commands run there or below use it,
    as git uses the repository above it (INGESTFLOW_HOME still wins)."""
    import os

    from ingestflow.config import HOME_FOLDER

    home = folder.expanduser().resolve() / HOME_FOLDER
    created = not home.is_dir()
    home.mkdir(parents=True, exist_ok=True)
    note = "INGESTFLOW_HOME is set and wins over it" if os.environ.get("INGESTFLOW_HOME") else None
    if as_json:
        from ingestflow.cli.render import print_json

        print_json({"home": home, "created": created, "note": note})
        return
    typer.echo(f"{'created' if created else 'already a'} home at {home}: commands run in {home.parent} "
               "or below use it")
    if note:
        typer.echo(note, err=True)


@app.command("fake-providers")
def fake_providers(
    openai_port: Annotated[int, typer.Option(help="Port of the fake OpenAI API.")] = 8081,
    llamaparse_port: Annotated[int, typer.Option(help="Port of the fake LlamaParse API.")] = 8082,
    cohere_port: Annotated[int, typer.Option(help="Port of the fake Cohere Rerank API.")] = 8083,
    api_key: Annotated[str, typer.Option(help="Key every fake accepts.")] = "sk-fake",
    rpm: Annotated[int | None, typer.Option(help="Fake OpenAI requests-per-minute limit.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Fake OpenAI tokens-per-minute limit.")] = None,
) -> None:
    """Run the fake OpenAI, LlamaParse and Cohere servers on loopback until Ctrl-C (or SIGTERM).

    Point a deployment at them (OPENAI_API_URL, LLAMAPARSE_BASE_URL, COHERE_BASE_URL) to
    test it without paying; inject faults with POST /_control/faults on any server.
    """
    import time

    from ingestflow.cli.common import console
    from ingestflow.testing import FakeCohere, FakeLlamaParse, FakeOpenAI

    with FakeOpenAI(api_key=api_key, rpm=rpm, tpm=tpm, port=openai_port) as openai_fake, \
            FakeLlamaParse(api_key=api_key, port=llamaparse_port) as llama_fake, \
            FakeCohere(api_key=api_key, port=cohere_port) as cohere_fake:
        console.print(f"fake OpenAI:     OPENAI_API_URL={openai_fake.url}")
        console.print(f"fake LlamaParse: LLAMAPARSE_BASE_URL={llama_fake.url}")
        console.print(f"fake Cohere:     COHERE_BASE_URL={cohere_fake.url}")
        console.print('faults: curl -X POST .../_control/faults -d \'{"inject": ["429", "nan"]}\'', markup=False)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
