"""API keys: random bearer tokens that name a tenant.

Only the sha256 of a token is stored, so a leaked database does not leak usable keys,
and lookups are by exact hash (an index hit, no timing-sensitive comparison). The token
is shown once, at creation; ``prefix`` identifies a key in listings without revealing it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingestflow.store.sql import query

TOKEN_PREFIX = "ifk_"
PREFIX_CHARS = 12  # "ifk_" + 8 random characters: enough to tell keys apart
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def valid_tenant(tenant: str) -> bool:
    return bool(_TENANT.match(tenant))


async def create_key(conn: AsyncConnection, tenant: str) -> str:
    """A new key for the tenant; the returned token is the only copy there will be."""
    if not valid_tenant(tenant):
        raise ValueError("tenant names are 1-100 letters, digits, '.', '_' or '-'")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        query("api_key_insert"),
        {"tenant": tenant, "key_hash": hash_key(token), "prefix": token[:PREFIX_CHARS]},
    )
    return token


async def tenant_for_key(conn: AsyncConnection, token: str) -> str | None:
    """The tenant of a live (not revoked) key, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    cur = await conn.execute(query("api_key_lookup"), {"key_hash": hash_key(token)})
    row = await cur.fetchone()
    return row[0] if row else None


async def list_keys(conn: AsyncConnection, tenant: str | None = None) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("api_key_list"), {"tenant": tenant})
    return await cur.fetchall()


async def revoke_key(conn: AsyncConnection, prefix: str) -> int:
    """Revoke the live keys shown with this prefix; returns how many."""
    cur = await conn.execute(query("api_key_revoke"), {"prefix": prefix})
    return len(await cur.fetchall())
