"""Counts kept with the writes (migration 0022), summed into one row per key now and then.

Triggers append each statement's net change to the tally tables in the writing
transaction, so a count is exact whatever commits, rolls back or is killed, and concurrent
writers never wait on a shared counter row. Reads sum a key's rows; the more rows a key
has gathered, the more a read sums, so each worker folds them every heartbeat interval
(a batch appends a few rows per stage it moves), and a read folds first when many have gathered
with no worker running (uploads to an API without one).
"""

from __future__ import annotations

from psycopg import AsyncConnection

from ingestflow.store.sql import query

FOLD_ROWS = 10_000  # rows gathered beyond those the last fold left: a read folds first
_left = 0  # rows the last fold of this process left (one per key)


async def fold(conn: AsyncConnection) -> int | None:
    """Sum every tally into one row per key; returns the rows folded, or None when another
    process is folding. In its own transaction: the deleted rows stay locked until it commits."""
    global _left
    async with conn.transaction():
        if not (await (await conn.execute(query("try_lock_fold"))).fetchone())[0]:
            return None
        folded = (await (await conn.execute(query("fold_tallies"))).fetchone())[0]
        _left = await rows(conn)
    return folded


async def rows(conn: AsyncConnection) -> int:
    return (await (await conn.execute(query("tally_rows"))).fetchone())[0]


async def fold_if_due(conn: AsyncConnection) -> None:
    """Fold when reads would sum FOLD_ROWS more rows than one per key."""
    if await rows(conn) > _left + FOLD_ROWS:
        await fold(conn)
