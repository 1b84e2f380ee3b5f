"""Planner statistics that keep up with bulk loads.

Autovacuum analyzes a table at most once a minute, after 10% of it changed. A worker
storing thousands of documents a second outruns that: the planner still believes the
embeddings table holds a handful of rows, and a batch's vector-reuse query loops over
the whole table for every chunk (measured: 0.02 s with fresh statistics, 11 s without,
at 10,000 documents). So before each batch a worker checks (one read of pg_stat), and when a hot table has
changed by half since its last analyze, one worker analyzes the columns the queries use.
"""

from __future__ import annotations

from psycopg import AsyncConnection

from ingestflow.store.sql import query

MIN_CHANGED_ROWS = 1000  # below this, stale statistics cannot make a plan expensive


async def refresh(conn: AsyncConnection) -> list[str]:
    """Analyze the hot tables if any has outgrown its statistics; returns the stale ones
    (empty when nothing was needed, or another worker is at it). Call in a transaction."""
    cur = await conn.execute(query("stale_statistics"), {"min_rows": MIN_CHANGED_ROWS})
    stale = [row[0] for row in await cur.fetchall()]
    if not stale or not (await (await conn.execute(query("try_lock_analyze"))).fetchone())[0]:
        return []
    await conn.execute(query("analyze_hot_tables"))
    return stale
