"""``ingestflow keys``: API keys for the HTTP API, one tenant per key.

The key is printed once, at creation; only its hash is stored, so a lost key is revoked
and replaced, never recovered. Imports are inside the commands, and annotations are not
strings, as in cli/main.py.
"""

from typing import Annotated

import typer

from ingestflow.cli.options import JsonOpt, TenantFilterOpt, tenant_name

app = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True, rich_markup_mode=None)


KeyTenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant the key acts for.", callback=tenant_name)]


@app.command()
def create(tenant: KeyTenantOpt, as_json: JsonOpt = False) -> None:
    """Create a key and print it (once: it is stored only as a hash)."""
    from ingestflow.cli.common import console, run
    from ingestflow.operations import keys

    key = run(lambda rt: keys.create(rt.db, tenant), pool_size=1)
    if as_json:
        from ingestflow.cli.render import print_json

        print_json({"key": key, "tenant": tenant, "prefix": key[:keys.PREFIX_CHARS]})
        return
    console.print(f"API key for tenant {tenant} (shown only now):", markup=False, highlight=False)
    print(key)


@app.command("list")
def list_(tenant: TenantFilterOpt = None, as_json: JsonOpt = False) -> None:
    """Keys by prefix, tenant and state (never the keys themselves)."""
    from ingestflow.cli.common import console, run, start_database

    start_database()
    from rich.table import Table

    from ingestflow.cli.render import print_json
    from ingestflow.operations import keys

    found = run(lambda rt: keys.list_all(rt.db, tenant), pool_size=1)
    if as_json:
        print_json({"keys": found})
        return
    table = Table(title="API keys")
    for col in ("prefix", "tenant", "created", "revoked"):
        table.add_column(col)
    for k in found:
        table.add_row(k["prefix"] + "…", k["tenant"], f"{k['created_at']:%Y-%m-%d %H:%M}",
                      f"{k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "")
    console.print(table)


@app.command()
def revoke(prefix: Annotated[str, typer.Argument(help="The key's prefix as `keys list` shows it.")],
           as_json: JsonOpt = False) -> None:
    """Revoke a key at once; requests with it answer 401 from then on."""
    from ingestflow.cli.common import console, run, start_database

    start_database()
    from ingestflow.cli.render import print_json
    from ingestflow.operations import keys

    revoked = run(lambda rt: keys.revoke(rt.db, prefix), pool_size=1)
    if as_json:
        print_json({"revoked": revoked})
    else:
        console.print(f"revoked {revoked} key(s)")
