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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

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
    task: str = "ingest"  # or "reembed": embed a complete document into a new space
    batch_api: bool = False  # embed through the OpenAI Batch API
    size_bytes: int = 0  # the document's, which bound a claim


async def claim(conn: AsyncConnection, owner: str, lease_seconds: float, limit: int, max_bytes: int, *,
                at_least_one: bool = True) -> list[ClaimedJob]:
    """Up to ``limit`` runnable jobs whose documents hold at most ``max_bytes`` together
    (``at_least_one``: the first whatever its size), each with its own lease."""
    cur = await conn.execute(query("claim_jobs"), {"owner": owner, "lease_seconds": lease_seconds, "limit": limit,
                                                   "max_bytes": max_bytes, "at_least_one": at_least_one})
    return [ClaimedJob(*row) for row in await cur.fetchall()]


@dataclass(frozen=True)
class Fence:
    deferred_since: datetime | None  # start of the current deferral streak
    now: datetime  # the database's clock


async def fence_many(conn: AsyncConnection, job_ids: Sequence[int], owner: str, lease_seconds: float, *,
                     progress: bool = False) -> dict[int, Fence]:
    """Renew the leases still held and return them by job id: call first in every stage
    transaction, and write only for the jobs returned (a lost lease fences only its own
    job). ``progress``: this transaction writes results, which ends deferral streaks."""
    cur = await conn.execute(query("renew_leases"), {"job_ids": list(job_ids), "owner": owner,
                                                     "lease_seconds": lease_seconds, "progress": progress})
    return {row[0]: Fence(row[1], row[2]) for row in await cur.fetchall()}


async def fence(conn: AsyncConnection, job: ClaimedJob, owner: str, lease_seconds: float, *,
                progress: bool = False) -> Fence:
    """One job's fence; LeaseLost when another worker owns it."""
    fences = await fence_many(conn, [job.id], owner, lease_seconds, progress=progress)
    if job.id not in fences:
        raise LeaseLost(f"job {job.id} is no longer owned by {owner}")
    return fences[job.id]


async def finish(conn: AsyncConnection, job_ids: Sequence[int], owner: str, *, failed: bool,
                 error: str | None = None) -> None:
    await conn.execute(query("finish_jobs"), {"job_ids": list(job_ids), "owner": owner,
                                              "state": "failed" if failed else "done", "last_error": error})


@dataclass(frozen=True)
class Reschedule:
    """A job going back to the queue: when, why, and whether as a deferral."""

    job_id: int
    delay_seconds: float
    reason: str
    deferred: bool


async def reschedule(conn: AsyncConnection, rows: Sequence[Reschedule], owner: str) -> None:
    if rows:
        await conn.execute(query("reschedule_jobs"), {
            "job_ids": [r.job_id for r in rows], "delays": [r.delay_seconds for r in rows],
            "reasons": [r.reason for r in rows], "deferred": [r.deferred for r in rows],
            "owners": [owner] * len(rows)})


async def release(conn: AsyncConnection, job_ids: Sequence[int], owner: str) -> None:
    """Back to the queue at once, the attempt given back (shutdown, lost database)."""
    await conn.execute(query("release_jobs"), {"job_ids": list(job_ids), "owner": owner})


async def pending(conn: AsyncConnection, document_ids: list[uuid.UUID]) -> int:
    """Jobs among these documents with work due now (ready and due, or running)."""
    cur = await conn.execute(query("pending_jobs"), {"ids": document_ids})
    return (await cur.fetchone())[0]


async def listen(conn: AsyncConnection) -> None:
    """Subscribe an autocommit connection to job notifications (see ``conn.notifies()``)."""
    await conn.execute(query("listen_jobs").replace("{channel}", JOBS_CHANNEL))


async def enqueue_reembed(conn: AsyncConnection, tenant: str, space_id: int, chunking: dict[str, int], *,
                          batch_api: bool) -> list[uuid.UUID]:
    """Reembed jobs for the tenant's current documents chunked by ``chunking`` and not yet
    covered by the space (the others are re-chunked, which embeds them)."""
    cur = await conn.execute(query("enqueue_reembed"), {"tenant": tenant, "space_id": space_id,
                                                        "chunking": Jsonb(chunking), "batch_api": batch_api})
    ids = [row[0] for row in await cur.fetchall()]
    if ids:
        await conn.execute(query("notify"), {"channel": JOBS_CHANNEL})
    return ids


async def reembed_jobs(conn: AsyncConnection, tenant: str) -> dict[str, int]:
    cur = await conn.execute(query("reembed_jobs"), {"tenant": tenant})
    return dict(await cur.fetchall())


async def queue_depth(conn: AsyncConnection, tenant: str | None) -> dict[str, float]:
    """Runnable, waiting and running jobs and the oldest runnable job's age, for one
    tenant or (None) all of them."""
    cur = conn.cursor(row_factory=dict_row)
    return await (await cur.execute(query("queue_depth"), {"tenant": tenant})).fetchone()
