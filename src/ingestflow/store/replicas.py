"""Hot standbys for reads: search and read-only routes go to a standby listed in
DATABASE_READ_URLS, writes and the queue never do.

Replication itself is PostgreSQL's (streaming replication, ``pg_basebackup -R``); this
module only chooses where a read runs. A standby is used while it answers and its replay
trails the primary by at most REPLICA_MAX_LAG_SECONDS, checked before each read (one
round trip, much less than a search). One that is down, lagging, or not a standby at all
is skipped for the primary, with a warning logged when its state changes, and is left
alone for RETRY_SECONDS after a failure so that reads do not wait on it: a read never
fails because of a replica.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ingestflow.logging import get_logger
from ingestflow.store.sql import query

T = TypeVar("T")
log = get_logger(__name__)
CONNECT_SECONDS = 1.0  # a read waits this long at most for a standby's connection
RETRY_SECONDS = 5.0  # a standby that failed is not tried again before this


class Replica:
    def __init__(self, number: int, url: str, *, max_size: int) -> None:
        self.name = f"replica {number}"  # never its URL: that may hold a password
        self.pool = AsyncConnectionPool(url, min_size=0, max_size=max_size, open=False, timeout=CONNECT_SECONDS,
                                        check=AsyncConnectionPool.check_connection)
        self.skipped_until = 0.0
        self.skipping: str | None = None  # why reads skip it now, once logged

    def skip(self, reason: str, *, retry: bool) -> None:
        if retry:
            self.skipped_until = time.monotonic() + RETRY_SECONDS
        if self.skipping != reason:
            log.warning("replica_skipped", replica=self.name, reason=reason)
        self.skipping = reason

    def use(self) -> None:
        if self.skipping is not None:
            log.info("replica_used_again", replica=self.name)
        self.skipping = None


class Replicas:
    """The standbys of one primary, tried in turn."""

    def __init__(self, urls: list[str], *, max_lag_seconds: float, max_size: int) -> None:
        self.max_lag_seconds = max_lag_seconds
        self.members = [Replica(n, url, max_size=max_size) for n, url in enumerate(urls, 1)]
        self._turn = itertools.count()

    async def open(self) -> None:
        for replica in self.members:
            await replica.pool.open(wait=False)  # a standby down at start is skipped, not fatal

    async def close(self) -> None:
        for replica in self.members:
            await replica.pool.close()

    async def read(self, fn: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> tuple[bool, T | None]:
        """(True, fn's answer on a standby), or (False, None) when none can answer now."""
        start = next(self._turn)
        now = time.monotonic()
        for i in range(len(self.members)):
            replica = self.members[(start + i) % len(self.members)]
            if replica.skipped_until > now:
                continue
            try:
                async with replica.pool.connection() as conn:
                    cur = await conn.execute(query("replica_lag"))
                    standby, lag = await cur.fetchone()
                    if not standby:
                        replica.skip("not a standby (pg_is_in_recovery() is false): never read from it",
                                     retry=True)
                        continue
                    if lag is None or lag > self.max_lag_seconds:
                        replica.skip(f"replay lags more than REPLICA_MAX_LAG_SECONDS={self.max_lag_seconds:g}",
                                     retry=False)
                        continue
                    answer = await fn(conn)
            # conflict with recovery (a standby cancels a read that replay needs to overrule)
            except (psycopg.OperationalError, psycopg.errors.SerializationFailure, PoolTimeout) as exc:
                replica.skip(f"cannot answer ({type(exc).__name__})", retry=True)
                continue
            replica.use()
            return True, answer
        return False, None
