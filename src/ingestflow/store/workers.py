"""Worker heartbeats: which workers are alive, shared by every process through ``workers``.

Each worker rewrites its row every WORKER_HEARTBEAT_SECONDS and deletes it when it stops
cleanly; a killed one ages out after three intervals (its own, stored in the row, so a
reader with other settings judges it the same way). Live workers prune long-dead rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection

from ingestflow.store.sql import query

PRUNE_AFTER_SECONDS = 86_400.0  # a dead worker's row is kept this long, then deleted


@dataclass(frozen=True)
class LiveWorker:
    owner: str  # the lease owner name on the jobs it runs (store/jobs.new_owner)
    host: str
    pid: int
    slots: int  # jobs in parallel
    jobs_done: int
    started_at: datetime
    heartbeat_at: datetime


async def heartbeat(conn: AsyncConnection, *, owner: str, host: str, pid: int, slots: int,
                    interval_seconds: float, jobs_done: int) -> None:
    """Register or refresh this worker, and forget the long dead."""
    await conn.execute(query("worker_heartbeat"), {"owner": owner, "host": host, "pid": pid, "slots": slots,
                                                   "interval_seconds": interval_seconds, "jobs_done": jobs_done})
    await conn.execute(query("workers_prune"), {"dead_seconds": PRUNE_AFTER_SECONDS})


async def stopped(conn: AsyncConnection, owner: str) -> None:
    await conn.execute(query("worker_stopped"), {"owner": owner})


async def alive(conn: AsyncConnection) -> list[LiveWorker]:
    cur = await conn.execute(query("workers_alive"))
    return [LiveWorker(*row) for row in await cur.fetchall()]
