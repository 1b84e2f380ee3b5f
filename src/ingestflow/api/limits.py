"""Per-tenant limits of the HTTP API, enforced in the database so every API server
shares them. Exceeding one answers 429 with Retry-After.

An upload is checked twice: read-only before its body is read, so a tenant at a limit
costs the server no upload bytes, and atomically after, under a per-tenant lock, so that
concurrent uploads cannot all pass one count and overshoot the limit together.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from ingestflow.api.deps import ApiLimits
from ingestflow.api.errors import ApiError
from ingestflow.store.sql import query

ACTIVE_RETRY_AFTER_SECONDS = 10  # documents finish in seconds to minutes: ask again soon
UPLOADS = "uploads"


async def check_upload(conn: AsyncConnection, tenant: str, limits: ApiLimits) -> None:
    """Refuse an upload before its body is read when the tenant is already at a limit.
    Only a fast path: ``admit_upload`` decides."""
    await check_active(conn, tenant, limits.max_concurrent_jobs)
    now, day = _day()
    cur = await conn.execute(query("api_usage_get"), {"tenant": tenant, "kind": UPLOADS, "window_start": day})
    row = await cur.fetchone()
    if row is not None and row[0] >= limits.uploads_per_day:
        raise _upload_limit(limits.uploads_per_day, now, day)


async def admit_upload(conn: AsyncConnection, tenant: str, limits: ApiLimits) -> None:
    """Take a pipeline slot and count the upload, in the caller's transaction, which then
    registers the document and commits, releasing the tenant's lock."""
    await lock_tenant(conn, tenant)
    await check_active(conn, tenant, limits.max_concurrent_jobs)
    await take_upload(conn, tenant, limits.uploads_per_day)


async def lock_tenant(conn: AsyncConnection, tenant: str) -> None:
    """Serialize, until commit, whatever adds to the tenant's documents in the pipeline, so
    that counting them and adding one are one step. Taken before any row lock."""
    await conn.execute(query("api_lock_tenant"), {"tenant": tenant})


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
    now, day = _day()
    cur = await conn.execute(
        query("api_usage_take"),
        {"tenant": tenant, "kind": UPLOADS, "window_start": day, "limit": limit},
    )
    if await cur.fetchone() is None:
        raise _upload_limit(limit, now, day)


def _day() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now, now.replace(hour=0, minute=0, second=0, microsecond=0)


def _upload_limit(limit: int, now: datetime, day: datetime) -> ApiError:
    retry_after = int((day + timedelta(days=1) - now).total_seconds()) + 1
    return ApiError(429, "upload_limit", f"The daily limit of {limit} uploads is used up.",
                    headers={"Retry-After": str(retry_after)})
