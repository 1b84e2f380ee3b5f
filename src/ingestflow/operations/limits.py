"""Per-tenant limits of the HTTP API, enforced in the database so every API server
shares them. Exceeding one is refused with the time to wait (HTTP 429 with Retry-After).

An upload is checked twice: read-only before its body is read, so a tenant at a limit
costs the server no upload bytes, and atomically after, under a per-tenant lock, so that
concurrent uploads cannot all pass one count and overshoot the limit together. The
operator's own CLI is not an API client and is not subject to these limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from ingestflow.operations.errors import Refused
from ingestflow.store import usage

ACTIVE_RETRY_AFTER_SECONDS = 10  # documents finish in seconds to minutes: ask again soon
UPLOADS = "uploads"


@dataclass(frozen=True)
class TenantLimits:
    max_concurrent_jobs: int  # documents of a tenant still in the pipeline
    uploads_per_day: int  # upload requests of a tenant per UTC day


async def check_upload(conn: AsyncConnection, tenant: str, limits: TenantLimits) -> None:
    """Refuse an upload before its body is read when the tenant is already at a limit.
    Only a fast path: ``admit`` decides."""
    await check_active(conn, tenant, limits)
    now, day = _day()
    if await usage.used(conn, tenant, UPLOADS, day) >= limits.uploads_per_day:
        raise _upload_limit(limits.uploads_per_day, now, day)


async def admit(conn: AsyncConnection, tenant: str, limits: TenantLimits) -> None:
    """Take a pipeline slot and count the upload, in the caller's transaction, which then
    registers the document and commits, releasing the tenant's lock."""
    await usage.lock_tenant(conn, tenant)
    await check_active(conn, tenant, limits)
    now, day = _day()
    if not await usage.take(conn, tenant, UPLOADS, day, limits.uploads_per_day):
        raise _upload_limit(limits.uploads_per_day, now, day)


async def check_active(conn: AsyncConnection, tenant: str, limits: TenantLimits) -> None:
    """Refuse new work while the tenant already has its limit of documents in the pipeline."""
    active = await usage.active_documents(conn, tenant)
    if active >= limits.max_concurrent_jobs:
        raise Refused("limit", "too_many_jobs",
                      f"{active} documents are still being processed (limit {limits.max_concurrent_jobs}); "
                      "try again later.", retry_after=ACTIVE_RETRY_AFTER_SECONDS)


def _day() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now, now.replace(hour=0, minute=0, second=0, microsecond=0)


def _upload_limit(limit: int, now: datetime, day: datetime) -> Refused:
    retry_after = int((day + timedelta(days=1) - now).total_seconds()) + 1
    return Refused("limit", "upload_limit", f"The daily limit of {limit} uploads is used up.",
                   retry_after=retry_after)
