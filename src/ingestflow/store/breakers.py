"""Circuit breakers: one row per paid service in ``breakers``, shared by every worker.

The row is the breaker: its state, its failure counts and who holds the half-open probe.
Every decision is one statement on that row (the probe is taken with a conditional
UPDATE, an outcome recorded under FOR UPDATE), so workers on many machines agree on it
without talking to each other. services/breaker.py holds the policy around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingestflow.store.sql import query


@dataclass(frozen=True)
class Breaker:
    state: str  # "closed" | "open" | "half_open"
    consecutive_failures: int
    opened_at: datetime | None
    probe_owner: str | None
    probe_until: datetime | None
    now: datetime  # the database's clock, to compare the times above with


class BreakerState(TypedDict):
    service: str
    state: str
    consecutive_failures: int
    opened_at: datetime | None


async def ensure(conn: AsyncConnection, service: str) -> None:
    """Create the service's breaker, closed, if it is not there: ``record`` locks the row."""
    await conn.execute(query("breaker_ensure"), {"service": service})


async def get(conn: AsyncConnection, service: str) -> Breaker | None:
    """The service's breaker; None when it never recorded an outcome (closed)."""
    cur = await conn.execute(query("breaker_get"), {"service": service})
    row = await cur.fetchone()
    return None if row is None else Breaker(*row)


async def take_probe(
    conn: AsyncConnection, service: str, *, owner: str, cooldown_seconds: float, probe_seconds: float
) -> bool:
    """Become the half-open probe for ``probe_seconds`` if the cool-down is over (or the last
    probe's time ran out); True for exactly one caller across all workers."""
    cur = await conn.execute(query("breaker_take_probe"), {
        "service": service, "owner": owner, "cooldown_seconds": cooldown_seconds, "probe_seconds": probe_seconds,
    })
    return await cur.fetchone() is not None


async def release_probe(conn: AsyncConnection, service: str, *, owner: str) -> None:
    """Give back the probe ``owner`` holds without using it, so the next caller may probe."""
    await conn.execute(query("breaker_release_probe"), {"service": service, "owner": owner})


async def record(
    conn: AsyncConnection,
    service: str,
    *,
    failed: bool,
    threshold: int,
    rate: float,
    min_calls: int,
    window_seconds: float,
) -> tuple[str, str]:
    """Count one call's outcome and move the breaker (see breaker_record.sql); return
    (state, previous state). The row must exist (``ensure``)."""
    cur = await conn.execute(query("breaker_record"), {
        "service": service, "failed": failed, "threshold": threshold, "rate": rate,
        "min_calls": min_calls, "window": window_seconds,
    })
    state, previous = await cur.fetchone()
    return state, previous


async def states(conn: AsyncConnection) -> list[BreakerState]:
    """Every breaker, by service: for doctor, the dashboard and /metrics."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("breaker_states"))
    return await cur.fetchall()  # type: ignore[return-value]
