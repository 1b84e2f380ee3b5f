"""Spend: the ``ledger`` of paid calls, the ``spend_counters`` that enforce the limits,
and the cost reports that the CLI and the API read.

Every paid call is a ledger row from before the call (``reserved``, at its estimate) to
after it (``settled`` at what the provider billed, or ``released`` when it did not bill).
The counters hold each window's running totals, so that a limit is checked with one
conditional UPDATE instead of a sum over the ledger; services/budget.py decides which
counters a call moves and runs these functions in one transaction. Reports count
``settled`` and ``reserved`` rows (money that is or may be spent), never ``released``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, TypedDict

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingestflow.store.sql import query


async def now(conn: AsyncConnection) -> datetime:
    """The database's clock: all workers cut their windows from it, not from their own."""
    cur = await conn.execute(query("now"))
    return (await cur.fetchone())[0]


async def reserve(conn: AsyncConnection, *, service: str, model: str, unit: str, units: int, cost_usd: Decimal,
                  tenant: str | None, attempt: int | None, owner: str | None) -> int:
    """Write a ``reserved`` ledger row at the estimate and return its id. ``owner`` names the
    worker whose leases keep the reservation alive (see ``sweep``)."""
    cur = await conn.execute(query("insert_ledger"), {
        "service": service, "model": model, "unit": unit, "units": units, "cost_usd": cost_usd,
        "tenant": tenant, "attempt": attempt, "owner": owner,
    })
    return (await cur.fetchone())[0]


async def created_at(conn: AsyncConnection, ledger_id: int) -> datetime:
    return (await (await conn.execute(query("ledger_created_at"), {"id": ledger_id})).fetchone())[0]


async def share(conn: AsyncConnection, ledger_id: int, shares: Sequence[tuple[uuid.UUID, int, Decimal]]) -> None:
    """Attribute a ledger row to the documents it served: (document, units, cost) each."""
    await conn.execute(query("replace_ledger_shares"), {
        "ledger_id": ledger_id, "documents": [d for d, _, _ in shares],
        "units": [u for _, u, _ in shares], "costs": [c for _, _, c in shares]})


async def close(
    conn: AsyncConnection,
    ledger_id: int,
    *,
    state: Literal["settled", "released"],
    units: int,
    cost_usd: Decimal,
    outcome: str,
) -> Decimal | None:
    """Settle a reservation at what was billed, or release it (cost 0); return the amount
    the row held before, so the caller can move the counters by the difference. A row the
    sweeper closed as ``abandoned`` is corrected too. None: the row was already closed by
    its own worker, and nothing changed."""
    cur = await conn.execute(query("settle_ledger"), {
        "id": ledger_id, "state": state, "units": units, "cost_usd": cost_usd, "outcome": outcome,
    })
    row = await cur.fetchone()
    return None if row is None else row[0]


async def sweep(conn: AsyncConnection, *, jobless_after_seconds: float) -> list[int]:
    """Close the reservations nobody will settle (their job's lease is gone; outside a job,
    older than ``jobless_after_seconds``) at their estimate; return their ids."""
    cur = await conn.execute(query("sweep_reservations"), {"jobless_after_seconds": jobless_after_seconds})
    return [row[0] for row in await cur.fetchall()]


async def ensure_counter(conn: AsyncConnection, *, service: str, kind: str, window_start: datetime) -> None:
    """Create a window's counter at zero if it is not there, so ``add_to_counter`` always
    finds a row to lock."""
    await conn.execute(query("ensure_counter"), {"service": service, "kind": kind, "window_start": window_start})


async def add_to_counter(
    conn: AsyncConnection,
    *,
    service: str,
    kind: str,
    window_start: datetime,
    delta: Decimal,
    limit: Decimal | None,
) -> Decimal | None:
    """Add ``delta`` to a window's counter if the result stays within ``limit`` (None: no
    limit) and return the new amount; None when it would not fit, and nothing changed.
    One conditional UPDATE, so racing workers can never both take the last of a limit."""
    cur = await conn.execute(query("add_to_counter"), {
        "service": service, "kind": kind, "window_start": window_start, "delta": delta, "limit": limit,
    })
    row = await cur.fetchone()
    return None if row is None else row[0]


# -- reports (``tenant`` None: every tenant's spend, for operators) ------------------------
# Sums of units are numeric in PostgreSQL (a sum of bigints may not fit one), hence Decimal.


class ServiceSpend(TypedDict):
    service: str
    today_usd: Decimal
    hour_usd: Decimal
    hour_requests: int
    today_units: Decimal


class DaySpend(TypedDict):
    day: date
    service: str
    cost_usd: Decimal
    units: Decimal
    requests: int


class DocumentSpend(TypedDict):
    id: uuid.UUID
    source_name: str
    version: int
    service: str
    cost_usd: Decimal
    units: Decimal
    requests: int


class ServiceCost(TypedDict):
    service: str
    cost_usd: Decimal
    units: Decimal
    calls: int


async def summary(conn: AsyncConnection, tenant: str | None) -> list[ServiceSpend]:
    """Spend per service today and this hour (UTC windows, as the limits count them); a
    service with no calls has no row."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("costs_summary"), {"tenant": tenant})
    return await cur.fetchall()  # type: ignore[return-value]


async def by_day(conn: AsyncConnection, tenant: str | None, *, limit: int) -> list[DaySpend]:
    """Spend per (UTC day, service), newest first, at most ``limit`` rows."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("costs_by_day"), {"tenant": tenant, "limit": limit})
    return await cur.fetchall()  # type: ignore[return-value]


async def by_document(conn: AsyncConnection, tenant: str | None, *, limit: int) -> list[DocumentSpend]:
    """Spend per (document version, service), most expensive first, at most ``limit`` rows
    (one document's: ``document_cost``)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("costs_by_document"), {"tenant": tenant, "limit": limit})
    return await cur.fetchall()  # type: ignore[return-value]


async def document_cost(conn: AsyncConnection, document_id: uuid.UUID, tenant: str | None) -> list[ServiceCost]:
    """One document's spend per service. The tenant is checked here too, so that a caller
    that forgot to check the document's owner still shows nobody another tenant's spend."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("ledger_document_cost"), {"document_id": document_id, "tenant": tenant})
    return await cur.fetchall()  # type: ignore[return-value]
