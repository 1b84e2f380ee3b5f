"""What every command shares: the console, settings, and running a body in the runtime.

Every way a command can be refused ends here as a readable line and an exit code: invalid
settings (2), an embedded server that cannot run on this machine (2), an operation the
operations layer refused (1, or 2 for a missing path), never a traceback. Errors go to
stderr, as JSON when the command was given --json.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer
from rich.console import Console

from ingestflow.cli.options import Output
from ingestflow.config import ConfigError, Settings, dotenv_files, find_home, load_settings
from ingestflow.operations.errors import Refused
from ingestflow.store import embedded

if TYPE_CHECKING:
    from ingestflow.runtime import Runtime

console = Console()
errors = Console(stderr=True)  # errors never mix with what a script reads from stdout
T = TypeVar("T")


def fail(message: str, code: int = 1, *, error: str = "error") -> NoReturn:
    """Print ``message`` to stderr and exit: plain text (a file name is not Rich markup), or
    with --json ``{"error": {"code", "message"}}``, the API's error shape and codes."""
    if Output.json:
        print(json.dumps({"error": {"code": error, "message": message}}), file=sys.stderr)
    else:
        errors.print(message, style="red", markup=False, highlight=False)
    raise typer.Exit(code)


def warn(message: str | None) -> None:
    """A warning on stderr, beside the output a script reads from stdout; None: nothing."""
    if message:
        errors.print(message, style="yellow", markup=False, highlight=False)


_NEW_HOMES_SAID: set[Path] = set()  # a command reads the settings more than once
_read: tuple[object, Settings] | None = None  # the settings last read, and what from


def _settings() -> Settings:
    """``load_settings``, read once for the two or three times a command asks (a read takes
    ~20 ms). Read again when what they are read from changed: tests run many commands, in
    other environments and folders, in one process."""
    global _read
    source = (sorted(os.environ.items()), Path.cwd(), [(f, f.stat().st_mtime_ns) for f in dotenv_files()])
    if _read is None or _read[0] != source:
        _read = (source, load_settings())
    return _read[1]


def settings_or_exit() -> Settings:
    """The settings; a home that does not exist yet (and that the settings use: the
    embedded database or local files) is said on stderr, once per process, so a command
    run from an unexpected folder does not silently start from nothing."""
    try:
        settings = _settings()
    except ConfigError as exc:
        fail(str(exc), 2, error="invalid_configuration")
    uses_home = settings.database_url is None or settings.storage_backend == "local"
    if uses_home and not settings.home.exists() and settings.home not in _NEW_HOMES_SAID:
        _NEW_HOMES_SAID.add(settings.home)
        errors.print(f"new empty home at {settings.home}, {settings.located_home.origin}; "
                     "`ingestflow init` pins one to a folder", markup=False, highlight=False, soft_wrap=True)
    return settings


def explain_configuration() -> None:
    """``doctor`` on settings that do not load: what is wrong, where the settings came from
    and the way out, then exit 2 (nothing else can be checked without them)."""
    try:
        _settings()
    except ConfigError as exc:
        files = dotenv_files()
        read = "the environment" + (" and " + ", ".join(map(str, files)) if files else " (no .env file found)")
        fail(f"{exc}\nThe settings were read from {read}; home: {find_home().path}.\nSet the variables named "
             "above there, or SERVICE_MODE=MOCK to run offline without keys. The database and services were "
             "not checked: they need a valid configuration.", 2, error="invalid_configuration")


def say_home_opened(settings: Settings) -> None:
    """Say on stderr which home and database a server opened: its API keys are those made
    there (`ingestflow keys create` run against another home makes keys it will refuse)."""
    if settings.database_url is None:
        database = "its embedded PostgreSQL"
    else:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(settings.database_url.get_secret_value())
        host, port = parts.get("host") or "localhost", parts.get("port") or 5432
        database = f"DATABASE_URL {host}:{port}/{parts.get('dbname')}"
    errors.print(f"home {settings.home}, {settings.located_home.origin}; database: {database}. API keys are "
                 "checked against this database: make them with `ingestflow keys create` using the same home "
                 "and settings.", markup=False, highlight=False, soft_wrap=True)


def start_database() -> None:
    """Start the embedded server in the background, if the settings use it. A command calls
    this before it imports the code it runs, so the server's start overlaps those imports.

    The garbage collector pauses until ``run``: the imports make objects that live as long
    as the process, so collecting while they load frees nothing and costs ~0.05 s.
    """
    gc.disable()
    embedded.start(settings_or_exit())


def database_url_or_exit(settings: Settings) -> str:
    from ingestflow.store.database import database_url

    try:
        return database_url(settings)
    except embedded.EmbeddedServerUnusable as exc:
        # the reason and the way out (DATABASE_URL) say more than a traceback
        fail(str(exc), 2, error="database_unavailable")


SYNC_NAMES_SHOWN = 10  # names of stale documents listed before the question


def agree_to_sync(folders: Sequence[str], names: Sequence[str], *, yes: bool, as_json: bool) -> bool:
    """``ingest --sync``, here or with --server: show how many documents of ``folders`` have
    no file any more (``names``) and ask whether to delete them (``yes``: without asking;
    with --json and no --yes, never: a script's stdout holds no question)."""
    if not as_json:
        shown = ", ".join(names[:SYNC_NAMES_SHOWN]) + (", ..." if len(names) > SYNC_NAMES_SHOWN else "")
        console.print(f"sync: {len(names)} documents of {', '.join(folders)} have no file any more"
                      + (f": {shown}" if names else ""), markup=False, highlight=False, soft_wrap=True)
    agreed = bool(names) and (yes or (not as_json and typer.confirm(f"delete these {len(names)} documents?")))
    if names and not as_json:
        console.print(f"deleted {len(names)} documents" if agreed else "deleted nothing", highlight=False)
    return agreed


def run(body: Callable[[Runtime], Awaitable[T]], *, pool_size: int = 8, quiet: bool = False,
        long_running: bool = False) -> T:
    """Run ``body`` in a fresh runtime. ``quiet``: commands that draw progress bars log only
    warnings (unless LOG_LEVEL asks for more), so log lines do not tear the display.
    ``long_running``: see runtime.open_runtime."""
    from ingestflow.runtime import open_runtime

    # Collection resumes (see start_database). What the imports made lives until exit:
    # frozen, no collection walks it again, including the last one at exit (~0.1 s).
    gc.enable()
    gc.freeze()
    settings = settings_or_exit()
    if quiet and "LOG_LEVEL" not in os.environ:
        settings = settings.model_copy(update={"log_level": "WARNING"})

    async def main() -> T:
        async with open_runtime(settings, pool_size=pool_size, long_running=long_running) as rt:
            return await body(rt)

    try:
        return asyncio.run(main())
    except embedded.EmbeddedServerUnusable as exc:
        fail(str(exc), 2, error="database_unavailable")
    except ConfigError as exc:
        fail(str(exc), 2, error="invalid_configuration")
    except Refused as exc:
        refuse(exc)


def refuse(exc: Refused) -> NoReturn:
    """An operation's refusal as the command's error: its code, exit 1."""
    fail(exc.message if Output.json else str(exc), 1, error=exc.code)
