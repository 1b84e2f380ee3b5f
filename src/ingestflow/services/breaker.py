"""A circuit breaker per service whose state lives in Postgres, shared by all workers.

closed: calls go through; outcomes are counted. open (after ``failure_threshold``
consecutive failures, or a failure rate of ``failure_rate`` over at least ``min_calls``
calls within ``WINDOW_SECONDS``): calls are refused with a DeferredError until the
cool-down ends. half_open: exactly one caller, across every worker, is let through as a
probe; its success closes the breaker, its failure opens it again for another cool-down.
The state is one row per service (store/breakers.py).
"""

from __future__ import annotations

from ingestflow.errors import DeferredError
from ingestflow.logging import get_logger
from ingestflow.store import breakers
from ingestflow.store.database import Database

log = get_logger("ingestflow.breaker")

# The failure rate is judged over a minute, the unit providers count their own limits in
# (BREAKER_MIN_CALLS is "calls in a minute"): long enough for min_calls to mean something,
# short enough that an old burst of failures does not open the breaker today.
WINDOW_SECONDS = 60.0
# How long the half-open probe is held for its caller. A probe is one attempt, which the
# provider client's own timeout bounds (OPENAI_TIMEOUT_SECONDS, 60 s by default); a probe
# still unanswered by then belongs to a dead worker, and the next caller probes instead.
PROBE_SECONDS = 60.0


class CircuitBreaker:
    """The policy for one service; the settings come from Settings (BREAKER_*), see router.py."""

    def __init__(
        self,
        db: Database,
        service: str,
        *,
        owner: str,
        failure_threshold: int,
        failure_rate: float,
        min_calls: int,
        cooldown_seconds: float,
    ) -> None:
        self.db = db
        self.service = service
        self.owner = owner
        self.failure_threshold = failure_threshold
        self.failure_rate = failure_rate
        self.min_calls = min_calls
        self.cooldown_seconds = cooldown_seconds

    async def before_call(self) -> bool:
        """Return if the call may go ahead (True: as the half-open probe); raise
        DeferredError while the breaker is open."""
        async with self.db.pool.connection() as conn:
            row = await breakers.get(conn, self.service)
            if row is None or row.state == "closed":
                return False
            if row.state == "half_open" and row.probe_owner == self.owner and row.probe_until > row.now:
                return True
            if await breakers.take_probe(conn, self.service, owner=self.owner,
                                         cooldown_seconds=self.cooldown_seconds,
                                         probe_seconds=PROBE_SECONDS):
                await conn.commit()
                log.info("breaker_probe", service=self.service, owner=self.owner)
                return True
            remaining = self.cooldown_seconds
            if row.state == "open" and row.opened_at is not None:
                remaining = max(1.0, self.cooldown_seconds - (row.now - row.opened_at).total_seconds())
            raise DeferredError(
                "breaker_open",
                f"{self.service} is failing; calls paused by the circuit breaker",
                retry_after=remaining,
            )

    async def release_probe(self) -> None:
        """Hand back a probe this caller will not use, so the next caller may take it."""
        async with self.db.pool.connection() as conn:
            await breakers.release_probe(conn, self.service, owner=self.owner)

    async def record_success(self) -> None:
        await self._record(failed=False)

    async def record_failure(self) -> None:
        await self._record(failed=True)

    async def _record(self, *, failed: bool) -> None:
        async with self.db.pool.connection() as conn:
            await breakers.ensure(conn, self.service)
            state, previous = await breakers.record(
                conn, self.service, failed=failed, threshold=self.failure_threshold, rate=self.failure_rate,
                min_calls=self.min_calls, window_seconds=WINDOW_SECONDS,
            )
        if state != previous:
            log.warning("breaker_" + state, service=self.service)
