"""``ingestflow keys``: API keys for the HTTP API, one tenant per key.

The key is printed once, at creation; only its hash is stored, so a lost key is revoked
and replaced, never recovered.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ingestflow.api.keys import create_key, list_keys, revoke_key, valid_tenant
from ingestflow.cli import common as cli
from ingestflow.runtime import Runtime

app = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True)


@app.command()
def create(tenant: Annotated[str, typer.Option("--tenant", help="Tenant the key acts for.")]) -> None:
    """Create a key and print it (once: it is stored only as a hash)."""
    if not valid_tenant(tenant):
        cli.console.print("[red]tenant names are 1-100 letters, digits, '.', '_' or '-'[/red]")
        raise typer.Exit(2)

    async def body(rt: Runtime) -> str:
        async with rt.db.pool.connection() as conn, conn.transaction():
            return await create_key(conn, tenant)

    key = cli.run(body, pool_size=1)
    cli.console.print(f"API key for tenant [bold]{tenant}[/bold] (shown only now):", highlight=False)
    print(key)


@app.command("list")
def list_(tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None) -> None:
    """Keys by prefix, tenant and state (never the keys themselves)."""

    async def body(rt: Runtime) -> list[dict]:
        async with rt.db.pool.connection() as conn:
            return await list_keys(conn, tenant)

    table = Table(title="API keys")
    for col in ("prefix", "tenant", "created", "revoked"):
        table.add_column(col)
    for k in cli.run(body, pool_size=1):
        table.add_row(k["prefix"] + "…", k["tenant"], f"{k['created_at']:%Y-%m-%d %H:%M}",
                      f"{k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "")
    cli.console.print(table)


@app.command()
def revoke(prefix: Annotated[str, typer.Argument(help="The key's prefix as `keys list` shows it.")]) -> None:
    """Revoke a key at once; requests with it answer 401 from then on."""

    async def body(rt: Runtime) -> int:
        async with rt.db.pool.connection() as conn, conn.transaction():
            return await revoke_key(conn, prefix.rstrip("…"))

    revoked = cli.run(body, pool_size=1)
    if not revoked:
        cli.console.print(f"[red]no live key with prefix {prefix!r}[/red]")
        raise typer.Exit(1)
    cli.console.print(f"revoked {revoked} key(s)")
