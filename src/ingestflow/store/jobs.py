"""The job queue: claim with SKIP LOCKED, leases that expire, and the lease fence.

A job is one document version's trip through the stages. The lease (owner + expiry) is
written in the claiming transaction; a worker that dies simply stops renewing it, and
once it expires any worker may claim the job and resume from the last durable stage.
Every stage transaction renews the lease *as its fence*: if another worker has taken
the job, the renewal matches no row and the stage rolls back instead of writing.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingestflow.store.documents import JOBS_CHANNEL
from ingestflow.store.sql import query


def new_owner() -> str:
    """A lease owner's name: host, process and a random part (a restarted process with a
    reused pid must not pass for its predecessor)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseLost(Exception):
    """Another worker owns this job now; stop without writing."""


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    document_id: uuid.UUID
    attempts: int


async def claim(conn: AsyncConnection, owner: str, lease_seconds: float) -> ClaimedJob | None:
    cur = await conn.execute(query("claim_job"), {"owner": owner, "lease_seconds": lease_seconds})
    row = await cur.fetchone()
    return ClaimedJob(*row) if row else None


@dataclass(frozen=True)
class Fence:
    deferred_since: datetime | None  # start of the current deferral streak
    now: datetime  # the database's clock


async def fence(
    conn: AsyncConnection, job: ClaimedJob, owner: str, lease_seconds: float, *, progress: bool = False
) -> Fence:
    """Renew the lease, or raise LeaseLost: call first in every stage transaction.
    ``progress``: this transaction writes results, which ends a deferral streak."""
    cur = await conn.execute(
        query("renew_lease"),
        {"job_id": job.id, "owner": owner, "lease_seconds": lease_seconds, "progress": progress},
    )
    row = await cur.fetchone()
    if row is None:
        raise LeaseLost(f"job {job.id} is no longer owned by {owner}")
    return Fence(*row)


async def finish(
    conn: AsyncConnection, job: ClaimedJob, owner: str, *, failed: bool, error: str | None = None
) -> None:
    await conn.execute(
        query("finish_job"),
        {"job_id": job.id, "owner": owner, "state": "failed" if failed else "done",
         "last_error": error},
    )


async def reschedule(
    conn: AsyncConnection,
    job: ClaimedJob,
    owner: str,
    *,
    delay_seconds: float,
    reason: str,
    deferred: bool,
) -> None:
    await conn.execute(
        query("reschedule_job"),
        {"job_id": job.id, "owner": owner, "delay_seconds": delay_seconds,
         "reason": reason, "deferred": deferred},
    )


async def release(conn: AsyncConnection, job: ClaimedJob, owner: str) -> None:
    """Back to the queue at once, the attempt given back (shutdown, lost database)."""
    await conn.execute(query("release_job"), {"job_id": job.id, "owner": owner})


async def pending(conn: AsyncConnection, document_ids: list[uuid.UUID]) -> int:
    """Jobs among these documents with work due now (ready and due, or running)."""
    cur = await conn.execute(query("pending_jobs"), {"ids": document_ids})
    return (await cur.fetchone())[0]


async def listen(conn: AsyncConnection) -> None:
    """Subscribe an autocommit connection to job notifications (see ``conn.notifies()``)."""
    await conn.execute(query("listen_jobs").replace("{channel}", JOBS_CHANNEL))


async def queue_depth(conn: AsyncConnection, tenant: str | None) -> dict[str, float]:
    """Runnable, waiting and running jobs and the oldest runnable job's age, for one
    tenant or (None) all of them."""
    cur = conn.cursor(row_factory=dict_row)
    return await (await cur.execute(query("queue_depth"), {"tenant": tenant})).fetchone()
