"""Shared rate limits: admitted requests in ``rate_events``, provider pauses in ``rate_state``.

Each admitted request is a row stamped by the database clock, so the sliding window is
the same for every worker. Admission is a read-decide-write, so it runs under a
per-service transaction lock (``lock``): the window read, the decision (in
services/ratelimit.py) and the insert see no other admitter in between.
"""

from __future__ import annotations

from psycopg import AsyncConnection

from ingestflow.store.sql import query


async def lock(conn: AsyncConnection, service: str) -> None:
    """Hold the service's admission lock until the transaction ends (call inside one)."""
    await conn.execute(query("rate_lock"), {"service": service})


async def blocked_for(conn: AsyncConnection, service: str) -> float:
    """Seconds left of a pause the provider asked for (Retry-After, exhausted quota); 0 if none."""
    cur = await conn.execute(query("rate_blocked"), {"service": service})
    row = await cur.fetchone()
    return float(row[0]) if row and row[0] > 0 else 0.0


async def window(conn: AsyncConnection, service: str, *, seconds: float) -> list[tuple[float, int]]:
    """(age in seconds, <= 0; tokens) of the requests admitted in the last ``seconds``, oldest first."""
    cur = await conn.execute(query("rate_window"), {"service": service, "window": seconds})
    return [(float(age), int(tokens)) for age, tokens in await cur.fetchall()]


async def admit(conn: AsyncConnection, service: str, tokens: int) -> int:
    """Count a request of ``tokens`` in the window from now; return its slot (the row id).
    Also drops the service's rows too old to count again, so the table stays small."""
    await conn.execute(query("rate_prune"), {"service": service})
    cur = await conn.execute(query("rate_admit"), {"service": service, "tokens": tokens})
    return (await cur.fetchone())[0]


async def restamp(conn: AsyncConnection, slot: int) -> None:
    """Move an admitted request's time to now (its answer came back)."""
    await conn.execute(query("rate_sent"), {"slot": slot})


async def block(conn: AsyncConnection, service: str, *, seconds: float) -> None:
    """Pause the service for everybody for ``seconds``; a longer pause already set stands."""
    await conn.execute(query("rate_block"), {"service": service, "seconds": seconds})
