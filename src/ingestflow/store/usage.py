"""A tenant's use of the HTTP API: requests counted per window (uploads per UTC day) and
the documents it has in the pipeline, for the per-tenant limits every API server shares."""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection

from ingestflow.store.sql import query


async def lock_tenant(conn: AsyncConnection, tenant: str) -> None:
    """Serialize, until commit, whatever adds to the tenant's documents in the pipeline, so
    that counting them and adding one are one step. Taken before any row lock."""
    await conn.execute(query("lock_tenant"), {"tenant": tenant})


async def active_documents(conn: AsyncConnection, tenant: str) -> int:
    """Documents of the tenant with pipeline work ahead (neither complete nor failed)."""
    return (await (await conn.execute(query("active_documents"), {"tenant": tenant})).fetchone())[0]


async def used(conn: AsyncConnection, tenant: str, kind: str, window_start: datetime) -> int:
    row = await (await conn.execute(query("usage_get"), {"tenant": tenant, "kind": kind,
                                                         "window_start": window_start})).fetchone()
    return 0 if row is None else row[0]


async def take(conn: AsyncConnection, tenant: str, kind: str, window_start: datetime, limit: int) -> bool:
    """Count one use unless the window's limit is reached (False: refused, nothing counted)."""
    cur = await conn.execute(query("usage_take"), {"tenant": tenant, "kind": kind,
                                                   "window_start": window_start, "limit": limit})
    return await cur.fetchone() is not None
