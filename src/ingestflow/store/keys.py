"""API keys: only the sha256 of each token is stored (see operations/keys.py)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingestflow.store.sql import query


async def insert(conn: AsyncConnection, tenant: str, key_hash: str, prefix: str) -> None:
    await conn.execute(query("key_insert"), {"tenant": tenant, "key_hash": key_hash, "prefix": prefix})


async def tenant_of(conn: AsyncConnection, key_hash: str) -> str | None:
    """The tenant of a live (not revoked) key with this hash."""
    row = await (await conn.execute(query("key_lookup"), {"key_hash": key_hash})).fetchone()
    return row[0] if row else None


async def list_keys(conn: AsyncConnection, tenant: str | None) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return await (await cur.execute(query("key_list"), {"tenant": tenant})).fetchall()


async def revoke(conn: AsyncConnection, prefix: str) -> int:
    """Revoke the live keys shown with this prefix; returns how many."""
    return len(await (await conn.execute(query("key_revoke"), {"prefix": prefix})).fetchall())
