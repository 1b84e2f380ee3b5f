"""Options several commands share, checked when the command line is parsed."""

from __future__ import annotations

from typing import Annotated

import typer


def tenant_name(value: str | None) -> str | None:
    """The tenant-name rule (operations/naming.py) applies to --tenant as to an API key's
    tenant: a name no key can carry would file documents no API client can ever see."""
    from ingestflow.operations.errors import Refused
    from ingestflow.operations.naming import check_tenant

    try:
        return None if value is None else check_tenant(value)
    except Refused as exc:
        raise typer.BadParameter(exc.message) from None


TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant the documents belong to.", callback=tenant_name)]
TenantFilterOpt = Annotated[str | None, typer.Option("--tenant", help="Only this tenant.", callback=tenant_name)]
# Checked by the search itself (operations/bounds.py), so a bad mode has the API's code, unknown_mode.
ModeOpt = Annotated[str | None, typer.Option(
    "--mode", help="hybrid: vectors and keywords fused; vector or keyword alone. [default: SEARCH_MODE, hybrid]")]
class Output:
    """How this process reports: set while the command line is parsed, read by ``fail``."""

    json = False


def json_output(value: bool) -> bool:
    Output.json = Output.json or value
    return value


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables; errors too "
                                                      "(on stderr).", callback=json_output)]
