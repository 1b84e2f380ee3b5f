"""API keys: random bearer tokens that name a tenant.

Only the sha256 of a token is stored, so a leaked database does not leak usable keys,
and lookups are by exact hash (an index hit, no timing-sensitive comparison). The token
is shown once, at creation; ``prefix`` identifies a key in listings without revealing it.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from ingestflow.operations.errors import Refused
from ingestflow.operations.naming import check_tenant
from ingestflow.store import keys
from ingestflow.store.database import Database

TOKEN_PREFIX = "ifk_"
PREFIX_CHARS = 12  # "ifk_" + 8 random characters: enough to tell keys apart


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(db: Database, tenant: str) -> str:
    """A new key for the tenant; the returned token is the only copy there will be."""
    check_tenant(tenant)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with db.pool.connection() as conn, conn.transaction():
        await keys.insert(conn, tenant, hash_key(token), token[:PREFIX_CHARS])
    return token


def presented(*tokens: str | None) -> str | None:
    """The one key a request presents (Authorization: Bearer, X-API-Key); None with none, or
    with two different ones."""
    given = {t for t in tokens if t}
    return given.pop() if len(given) == 1 else None


async def tenant_for(db: Database, token: str) -> str | None:
    """The tenant of a live (not revoked) key, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    async with db.pool.connection() as conn:
        return await keys.tenant_of(conn, hash_key(token))


async def list_all(db: Database, tenant: str | None = None) -> list[dict[str, Any]]:
    async with db.pool.connection() as conn:
        return await keys.list_keys(conn, tenant)


async def revoke(db: Database, prefix: str) -> int:
    """Revoke the live keys shown with this prefix (a trailing ellipsis is ignored)."""
    async with db.pool.connection() as conn, conn.transaction():
        revoked = await keys.revoke(conn, prefix.rstrip("…"))
    if not revoked:
        raise Refused("not_found", "not_found", f"No live key with prefix {prefix!r}.")
    return revoked
