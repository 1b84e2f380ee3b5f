"""A worker's batch of documents, and the fenced transactions every step writes in.

Every transaction of a step begins with the lease fence of every job in it: a job whose
lease was lost leaves the batch and nothing more is written for it, while the rest go on.
A document that fails leaves alone, with its own error.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from ingestflow.store import documents, jobs
from ingestflow.store.database import Database
from ingestflow.store.documents import StageConflict
from ingestflow.store.jobs import ClaimedJob, LeaseLost
from ingestflow.store.outage import until_reachable


class Released(Exception):
    """The worker is shutting down; the job goes back to the queue as it stands."""


@dataclass(eq=False)  # an item is itself: compared by identity, hashable
class Item:
    """One document of a batch, and why it left the batch if it did (``outcome``)."""

    job: ClaimedJob
    document: dict[str, Any]
    outcome: BaseException | None = None  # an error, a conflict, a lost lease, a release
    finished: bool = False  # its job is done (complete, retired, or re-embedded)
    stats: dict[str, Any] = field(default_factory=dict)  # what embedding did, for its event

    @property
    def id(self) -> uuid.UUID:
        return self.document["id"]

    @property
    def stage(self) -> str:
        return self.document["stage"]

    @property
    def tenant(self) -> str:
        return self.document["tenant"]

    @property
    def correlation_id(self) -> uuid.UUID:
        return self.document["correlation_id"]

    @property
    def active(self) -> bool:
        return self.outcome is None and not self.finished

    def leave(self, outcome: BaseException) -> None:
        if self.active:
            self.outcome = outcome

    def count(self, **amounts: int) -> None:
        for key, amount in amounts.items():
            self.stats[key] = self.stats.get(key, 0) + amount


@dataclass
class Batch:
    owner: str
    items: list[Item]
    should_stop: Callable[[], bool]

    def at(self, *stages: str, task: str = "ingest") -> list[Item]:
        return [i for i in self.items if i.active and i.stage in stages and i.job.task == task]


class Transactions:
    """The fenced transactions of one worker's batches."""

    def __init__(self, db: Database, lease_seconds: float) -> None:
        self.db = db
        self.lease_seconds = lease_seconds

    async def fence(self, conn: AsyncConnection, owner: str, items: Sequence[Item], *,
                    progress: bool = False) -> list[Item]:
        """Renew the batch's leases; the items whose lease is lost leave the batch.
        ``progress``: this transaction writes results, which ends deferral streaks."""
        live = await jobs.fence_many(conn, [i.job.id for i in items if i.active], owner, self.lease_seconds,
                                     progress=progress)
        for item in items:
            if item.job.id not in live:
                item.leave(LeaseLost(f"job {item.job.id} lost its lease"))
        return [i for i in items if i.active]

    @asynccontextmanager
    async def fenced(self, owner: str, items: Sequence[Item], *, progress: bool = False
                     ) -> AsyncIterator[tuple[AsyncConnection, list[Item]]]:
        """A transaction whose first statement is the fence of every job in it."""
        async with self.db.pool.connection() as conn, conn.transaction():
            yield conn, await self.fence(conn, owner, items, progress=progress)

    async def start(self, owner: str, items: list[Item], from_stages: tuple[str, ...], to_stage: str,
                    load: Callable[[AsyncConnection, list[Item]], Awaitable[None]] | None = None) -> list[Item]:
        """Mark the stage started for the documents still where the worker found them, and
        read what the stage needs in the same transaction."""
        async with self.fenced(owner, items) as (conn, live):
            moved = await advance(conn, live, from_stages, to_stage)
            if load is not None:
                await load(conn, moved)
        return moved

    async def commit(self, owner: str, items: list[Item],
                     write: Callable[[AsyncConnection, list[Item]], Awaitable[object]], what: str) -> None:
        """Results: a fenced, progress-marking transaction, retried while the database is
        unreachable (for up to a lease; after that the fence decides)."""
        if not [i for i in items if i.active]:
            return

        async def attempt() -> None:
            async with self.fenced(owner, items, progress=True) as (conn, live):
                if live:
                    await write(conn, live)

        await until_reachable(attempt, seconds=self.lease_seconds, what=what)


async def advance(conn: AsyncConnection, items: list[Item], from_stages: Sequence[str], to_stage: str) -> list[Item]:
    """Move the items' documents; one found elsewhere (another actor moved it) leaves."""
    moved = await documents.advance(conn, [i.id for i in items], from_stages, to_stage)
    for item in items:
        if item.id in moved:
            item.document["stage"] = to_stage
        else:
            item.leave(StageConflict(f"document {item.id} is not in {tuple(from_stages)}"))
    return [i for i in items if i.active]
