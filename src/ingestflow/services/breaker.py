"""A circuit breaker per service whose state lives in Postgres, shared by all workers.

closed: calls go through; outcomes are counted. open (after ``failure_threshold``
consecutive failures, or a failure rate of ``failure_rate`` over at least ``min_calls``
calls within ``window_seconds``): calls are refused with a DeferredError until the
cool-down ends. half_open: exactly one
caller, across every worker, is let through as a probe; its success closes the breaker,
its failure opens it again for another cool-down.
"""

from __future__ import annotations

from ingestflow.errors import DeferredError
from ingestflow.logging import get_logger
from ingestflow.store.database import Database
from ingestflow.store.sql import query

log = get_logger("ingestflow.breaker")


class CircuitBreaker:
    def __init__(
        self,
        db: Database,
        service: str,
        *,
        owner: str,
        failure_threshold: int = 5,
        failure_rate: float = 0.5,
        min_calls: int = 20,
        window_seconds: float = 60.0,
        cooldown_seconds: float = 30.0,
        probe_seconds: float = 60.0,
    ) -> None:
        self.db = db
        self.service = service
        self.owner = owner
        self.failure_threshold = failure_threshold
        self.failure_rate = failure_rate
        self.min_calls = min_calls
        self.window_seconds = window_seconds
        self.cooldown_seconds = cooldown_seconds
        self.probe_seconds = probe_seconds

    async def before_call(self) -> bool:
        """Return if the call may go ahead (True: as the half-open probe); raise
        DeferredError while the breaker is open."""
        params = {"service": self.service, "owner": self.owner,
                  "cooldown_seconds": self.cooldown_seconds, "probe_seconds": self.probe_seconds}
        async with self.db.pool.connection() as conn:
            row = await (await conn.execute(query("breaker_get"), params)).fetchone()
            if row is None or row[0] == "closed":
                return False
            state, _failures, opened_at, probe_owner, probe_until, now = row
            if state == "half_open" and probe_owner == self.owner and probe_until > now:
                return True
            if await (await conn.execute(query("breaker_take_probe"), params)).fetchone():
                await conn.commit()
                log.info("breaker_probe", service=self.service, owner=self.owner)
                return True
            remaining = self.cooldown_seconds
            if state == "open" and opened_at is not None:
                remaining = max(1.0, self.cooldown_seconds - (now - opened_at).total_seconds())
            raise DeferredError(
                "breaker_open",
                f"{self.service} is failing; calls paused by the circuit breaker",
                retry_after=remaining,
            )

    async def release_probe(self) -> None:
        """Hand back a probe this caller will not use, so the next caller may take it."""
        async with self.db.pool.connection() as conn:
            await conn.execute(query("breaker_release_probe"), {"service": self.service, "owner": self.owner})

    async def record_success(self) -> None:
        await self._record(failed=False)

    async def record_failure(self) -> None:
        await self._record(failed=True)

    async def _record(self, *, failed: bool) -> None:
        params = {"service": self.service, "failed": failed, "threshold": self.failure_threshold,
                  "rate": self.failure_rate, "min_calls": self.min_calls, "window": self.window_seconds}
        async with self.db.pool.connection() as conn:
            await conn.execute(query("breaker_ensure"), params)
            state, previous = await (await conn.execute(query("breaker_record"), params)).fetchone()
        if state != previous:
            log.warning("breaker_" + state, service=self.service)
