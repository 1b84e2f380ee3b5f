"""Spend limits enforced atomically across every worker sharing the database.

Before a paid call, ``reserve`` adds the call's estimated cost (from exact token counts)
and one request to the current windows' counters with conditional UPDATEs, and writes a
``reserved`` ledger row, all in one transaction: either every limit has room and all of
it is taken, or nothing changes and the caller gets a ``DeferredError`` saying when the
window frees up. ``settle`` replaces the estimate with the provider-reported usage;
``release`` gives back the cost of a call that was not billed. Both ride out a database
outage: the provider has billed by then, and that must reach the ledger. ``sweep`` closes
reservations that a killed worker left behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from psycopg import AsyncConnection

from ingestflow import metrics
from ingestflow.errors import DeferredError
from ingestflow.logging import get_logger
from ingestflow.store import costs, documents
from ingestflow.store.database import Database
from ingestflow.store.outage import until_reachable

log = get_logger("ingestflow.budget")
COST_QUANTUM = Decimal("1e-10")  # the ledger's precision: numeric(18, 10)
SETTLE_RETRY_SECONDS = 120.0  # how long a billed call's cost waits for the database
JOBLESS_RESERVATION_SECONDS = 3600.0  # a call outside a job (search) is long over by then


@dataclass(frozen=True)
class ServiceLimits:
    daily_cost_usd: Decimal | None = None
    hourly_requests: int | None = None


@dataclass(frozen=True)
class PaidCall:
    service: str
    model: str
    unit: str  # "tokens" | "pages" | "search_units"
    units: int
    cost_usd: Decimal
    tenant: str | None = None
    attempt: int | None = None
    owner: str | None = None  # the worker whose leases keep the reservation alive
    # The documents the call serves, each with its weight (tokens, pages): its cost is
    # attributed to them in proportion, so per-document spend stays exact.
    shares: tuple[tuple[uuid.UUID, int], ...] = ()


@dataclass(frozen=True)
class Reservation:
    ledger_id: int
    call: PaidCall
    day: datetime


@dataclass(frozen=True)
class _Check:
    service: str
    kind: str
    window_start: datetime
    delta: Decimal
    limit: Decimal | None
    window_end: datetime


class Budget:
    def __init__(
        self,
        db: Database,
        *,
        limits: dict[str, ServiceLimits],
        daily_total_usd: Decimal | None,
        enforce: bool,
        alert_ratio: float,
    ) -> None:
        self.db = db
        self.limits = limits
        self.daily_total_usd = daily_total_usd
        self.enforce = enforce
        self.alert_ratio = Decimal(str(alert_ratio))

    async def reserve(self, call: PaidCall) -> Reservation:
        async with self.db.pool.connection() as conn, conn.transaction():
            now = await costs.now(conn)
            day, hour = _day(now), _hour(now)
            for check in sorted(self._checks(call, day, hour), key=lambda c: (c.service, c.kind)):
                await self._take(conn, check, now)
            ledger_id = await costs.reserve(
                conn, service=call.service, model=call.model, unit=call.unit, units=call.units,
                cost_usd=call.cost_usd, tenant=call.tenant, attempt=call.attempt, owner=call.owner,
            )
            if call.shares:
                await costs.share(conn, ledger_id, split(call.shares, call.units, call.cost_usd))
        return Reservation(ledger_id, call, day)

    async def reservation(self, ledger_id: int, call: PaidCall) -> Reservation:
        """A reservation made by another process (a batch submitted hours ago), to settle:
        ``call`` describes what was billed, its shares the documents it served."""
        async with self.db.pool.connection() as conn:
            day = _day(await costs.created_at(conn, ledger_id))
        return Reservation(ledger_id, call, day)

    async def settle(self, reservation: Reservation, *, units: int, cost_usd: Decimal, outcome: str = "ok") -> None:
        await self._close(reservation, "settled", units, cost_usd, outcome)

    async def release(self, reservation: Reservation, *, outcome: str) -> None:
        await self._close(reservation, "released", 0, Decimal(0), outcome)

    async def _close(
        self, r: Reservation, state: Literal["settled", "released"], units: int, cost: Decimal, outcome: str
    ) -> None:
        async def close() -> None:
            async with self.db.pool.connection() as conn, conn.transaction():
                held = await costs.close(conn, r.ledger_id, state=state, units=units, cost_usd=cost,
                                         outcome=outcome)
                if held is None:
                    return
                if r.call.shares:
                    await costs.share(conn, r.ledger_id, split(r.call.shares, units, cost))
                if cost == held:
                    return
                for service in sorted({r.call.service, "total"}):
                    await costs.add_to_counter(conn, service=service, kind="daily_cost", window_start=r.day,
                                               delta=cost - held, limit=None)

        await until_reachable(close, seconds=SETTLE_RETRY_SECONDS, what="settle the ledger")

    async def sweep(self, *, jobless_after_seconds: float = JOBLESS_RESERVATION_SECONDS) -> int:
        """Close reservations whose worker is gone (see sweep_reservations.sql)."""
        async with self.db.pool.connection() as conn:
            swept = len(await costs.sweep(conn, jobless_after_seconds=jobless_after_seconds))
        if swept:
            log.warning("reservations_abandoned", count=swept)
        return swept

    def _checks(self, call: PaidCall, day: datetime, hour: datetime) -> list[_Check]:
        limits = self.limits.get(call.service, ServiceLimits())
        enforce = self.enforce
        checks = [
            _Check(call.service, "daily_cost", day, call.cost_usd,
                   limits.daily_cost_usd if enforce else None, day + timedelta(days=1)),
            _Check("total", "daily_cost", day, call.cost_usd,
                   self.daily_total_usd if enforce else None, day + timedelta(days=1)),
            _Check(call.service, "hourly_requests", hour, Decimal(1),
                   Decimal(limits.hourly_requests) if enforce and limits.hourly_requests is not None
                   else None, hour + timedelta(hours=1)),
        ]
        return checks

    async def _take(self, conn: AsyncConnection, check: _Check, now: datetime) -> None:
        await costs.ensure_counter(conn, service=check.service, kind=check.kind, window_start=check.window_start)
        after = await costs.add_to_counter(conn, service=check.service, kind=check.kind,
                                           window_start=check.window_start, delta=check.delta, limit=check.limit)
        if after is None:
            wait = (check.window_end - now).total_seconds()
            what = (f"daily cost limit ${check.limit}" if check.kind == "daily_cost"
                    else f"hourly request limit {check.limit}")
            raise DeferredError(
                "budget_exhausted",
                f"{check.service} {what} reached; resumes when the window ends in {wait:.0f} s",
                retry_after=wait + 1,
            )
        if check.limit:
            before = after - check.delta
            threshold = check.limit * self.alert_ratio
            if before < threshold <= after:
                detail = {"service": check.service, "kind": check.kind, "limit": str(check.limit),
                          "amount": str(after), "ratio": float(after / check.limit)}
                await documents.add_event(conn, None, None, "budget_alert", None, detail)
                log.warning("budget_alert", **detail)
                metrics.budget_alert(check.service, check.kind)


def _day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _hour(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def split(weights: Sequence[tuple[uuid.UUID, int]], units: int, cost: Decimal) -> list[tuple[uuid.UUID, int, Decimal]]:
    """(document, units, cost) shares in proportion to the weights (equal when all are 0),
    summing exactly to ``units`` and ``cost``: the largest remainders get the rounding."""
    w = [Decimal(x) for _, x in weights] if any(x for _, x in weights) else [Decimal(1)] * len(weights)
    total = sum(w)
    unit_parts = _apportion([units * x / total for x in w], Decimal(units), Decimal(1))
    cost_parts = _apportion([cost * x / total for x in w], cost, COST_QUANTUM)
    return [(doc, int(u), c) for (doc, _), u, c in zip(weights, unit_parts, cost_parts, strict=True)]


def _apportion(exact: Sequence[Decimal], total: Decimal, quantum: Decimal) -> list[Decimal]:
    """Each part rounded down to ``quantum``, the quanta left over handed to the parts with
    the largest remainders: the parts always add up to ``total``."""
    parts = [x.quantize(quantum, rounding=ROUND_DOWN) for x in exact]
    left = int((total - sum(parts)) / quantum)
    for i in sorted(range(len(parts)), key=lambda i: exact[i] - parts[i], reverse=True)[:left]:
        parts[i] += quantum
    return parts
