"""Per-tenant limits of the HTTP API, enforced in the database so every API server
shares them. Exceeding one answers 429 with Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from ingestflow.api.errors import ApiError
from ingestflow.store.sql import query

ACTIVE_RETRY_AFTER_SECONDS = 10  # documents finish in seconds to minutes: ask again soon


async def check_active(conn: AsyncConnection, tenant: str, limit: int) -> None:
    """Refuse new work while the tenant already has ``limit`` documents in the pipeline."""
    cur = await conn.execute(query("api_active_documents"), {"tenant": tenant})
    (active,) = await cur.fetchone()
    if active >= limit:
        raise ApiError(
            429, "too_many_jobs",
            f"{active} documents are still being processed (limit {limit}); try again later.",
            headers={"Retry-After": str(ACTIVE_RETRY_AFTER_SECONDS)},
        )


async def take_upload(conn: AsyncConnection, tenant: str, limit: int) -> None:
    """Count one upload in the tenant's UTC day, or refuse it once the day's limit is used."""
    now = datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    cur = await conn.execute(
        query("api_usage_take"),
        {"tenant": tenant, "kind": "uploads", "window_start": day, "limit": limit},
    )
    if await cur.fetchone() is None:
        retry_after = int((day + timedelta(days=1) - now).total_seconds()) + 1
        raise ApiError(429, "upload_limit", f"The daily limit of {limit} uploads is used up.",
                       headers={"Retry-After": str(retry_after)})
