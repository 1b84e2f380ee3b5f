"""What every command shares: the console, settings, and running a body in the runtime."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import typer
from rich.console import Console

from ingestflow.config import ConfigError, Settings, load_settings
from ingestflow.runtime import Runtime, open_runtime
from ingestflow.store.database import EmbeddedServerUnusable, database_url

console = Console()
T = TypeVar("T")


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _unusable(exc: EmbeddedServerUnusable) -> NoReturn:
    """The reason and the way out (DATABASE_URL) say more than a traceback."""
    console.print(str(exc), style="red", markup=False, highlight=False)
    raise typer.Exit(2) from None


def database_url_or_exit(settings: Settings) -> str:
    try:
        return database_url(settings)
    except EmbeddedServerUnusable as exc:
        _unusable(exc)


def run(body: Callable[[Runtime], Awaitable[T]], *, pool_size: int = 8, quiet: bool = False) -> T:
    """Run ``body`` in a fresh runtime. ``quiet``: commands that draw progress bars log only
    warnings (unless LOG_LEVEL asks for more), so log lines do not tear the display."""
    settings = settings_or_exit()
    if quiet and "LOG_LEVEL" not in os.environ:
        settings = settings.model_copy(update={"log_level": "WARNING"})

    async def main() -> T:
        async with open_runtime(settings, pool_size=pool_size) as rt:
            return await body(rt)

    try:
        return asyncio.run(main())
    except EmbeddedServerUnusable as exc:
        _unusable(exc)
