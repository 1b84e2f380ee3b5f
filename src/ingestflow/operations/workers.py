"""Live workers, and the warning when work waits for a worker that is not there.

Every face asks here (``status``, ``retry``, ``ingest --no-wait``, ``/readyz``, the API's
document answers, the dashboard), so they all warn in the same words and on the same rule:
some work is due and no worker has sent a heartbeat lately (store/workers.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ingestflow.runtime import Runtime
from ingestflow.store import jobs
from ingestflow.store import workers as store
from ingestflow.store.workers import LiveWorker

NO_WORKER = ("No worker is running, so queued documents wait: start one with `ingestflow worker`, "
             "or run `ingestflow serve` (without --workers 0), which processes uploads itself.")


@dataclass(frozen=True)
class Workers:
    alive: list[LiveWorker]
    count: int
    warning: str | None  # NO_WORKER when work is due and no worker is alive


async def status(rt: Runtime, tenant: str | None) -> Workers:
    """Live workers; the warning when jobs of ``tenant`` (None: any) are due or left
    running by a dead worker, and none is alive."""
    async with rt.db.pool.connection() as conn:
        alive = await store.alive(conn)
        queue = None if alive else await jobs.queue_depth(conn, tenant)
    return Workers(alive, len(alive), NO_WORKER if queue and queue["runnable"] + queue["running"] else None)


async def warning_for(rt: Runtime, document_ids: list[uuid.UUID]) -> str | None:
    """NO_WORKER when one of these documents has work due and no worker is alive."""
    async with rt.db.pool.connection() as conn:
        if await store.alive(conn):
            return None
        return NO_WORKER if await jobs.pending(conn, document_ids) else None
