"""``ingestflow keys``: API keys for the HTTP API, one tenant per key.

The key is printed once, at creation; only its hash is stored, so a lost key is revoked
and replaced, never recovered. Imports are inside the commands, as in cli/main.py.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ingestflow.cli.options import TenantFilterOpt, tenant_name

app = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True, rich_markup_mode=None)


KeyTenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant the key acts for.", callback=tenant_name)]


@app.command()
def create(tenant: KeyTenantOpt) -> None:
    """Create a key and print it (once: it is stored only as a hash)."""
    from ingestflow.cli.common import console, run
    from ingestflow.operations import keys

    key = run(lambda rt: keys.create(rt.db, tenant), pool_size=1)
    console.print(f"API key for tenant {tenant} (shown only now):", markup=False, highlight=False)
    print(key)


@app.command("list")
def list_(tenant: TenantFilterOpt = None) -> None:
    """Keys by prefix, tenant and state (never the keys themselves)."""
    from ingestflow.cli.common import console, run, start_database

    start_database()
    from rich.table import Table

    from ingestflow.operations import keys

    table = Table(title="API keys")
    for col in ("prefix", "tenant", "created", "revoked"):
        table.add_column(col)
    for k in run(lambda rt: keys.list_all(rt.db, tenant), pool_size=1):
        table.add_row(k["prefix"] + "…", k["tenant"], f"{k['created_at']:%Y-%m-%d %H:%M}",
                      f"{k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "")
    console.print(table)


@app.command()
def revoke(prefix: Annotated[str, typer.Argument(help="The key's prefix as `keys list` shows it.")]) -> None:
    """Revoke a key at once; requests with it answer 401 from then on."""
    from ingestflow.cli.common import console, run, start_database

    start_database()
    from ingestflow.operations import keys

    revoked = run(lambda rt: keys.revoke(rt.db, prefix), pool_size=1)
    console.print(f"revoked {revoked} key(s)")
