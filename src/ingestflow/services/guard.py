"""Everything that stands between the pipeline and a paid call, in one place.

For each attempt, in this order: the budget reserves the estimated cost (or defers), the
circuit breaker may refuse (deferred) or make this call its probe, the shared rate
limiter waits for a slot, the call runs, and its outcome settles the ledger and informs
the breaker and the limiter. The budget comes first so that a call deferred for money
holds neither a rate-limit slot nor the breaker's single probe. Attempts are retried here,
with backoff and Retry-After: this is ingestflow's single retry layer. A call that still
fails after its retries is a failed attempt of the job (its attempts are counted); only
budget, breaker, rate limit and quota defer a job for free. A guard with no breaker,
limiter or budget (free local services) only retries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TypeVar

from ingestflow import metrics, tracing
from ingestflow.errors import DeferredError, IngestError, TransientError
from ingestflow.logging import get_logger
from ingestflow.services.breaker import CircuitBreaker
from ingestflow.services.budget import Budget, PaidCall, Reservation
from ingestflow.services.failures import BILLED_FAILURES, THROTTLED
from ingestflow.services.ratelimit import RateLimiter
from ingestflow.services.retry import RetryPolicy, call_with_retries
from ingestflow.store.outage import DatabaseUnavailable

R = TypeVar("R")
log = get_logger("ingestflow.guard")

# A call cancelled mid-flight (its job's lease was lost) may already be billed: wait this
# long for its answer so that the ledger records what it cost.
CANCEL_GRACE_SECONDS = 90.0
# The ledger outcome of a call we stopped waiting for after sending it: kept charged at
# its reservation, since the provider may have billed it.
POSSIBLY_BILLED = "possibly_billed"


@dataclass(frozen=True)
class CallContext:
    """Who a call is for, recorded in the ledger: the tenant, and the documents it serves
    (one request may serve many; its cost is split among them by weight)."""

    tenant: str | None = None
    owner: str | None = None  # the worker whose leases keep the reservation alive
    shares: tuple[tuple[uuid.UUID, int], ...] = ()  # the documents served, with their weights


@dataclass(frozen=True)
class Pricing:
    model: str
    unit: str  # "tokens" | "pages" | "search_units"
    cost: Callable[[int], Decimal]


@dataclass
class ServiceGuard:
    service: str
    retry: RetryPolicy
    pricing: Pricing | None = None  # None: a free service, nothing to reserve
    breaker: CircuitBreaker | None = None
    limiter: RateLimiter | None = None
    budget: Budget | None = None

    @property
    def metered(self) -> bool:
        """Whether calls are priced or rate-limited, so their size must be known."""
        return self.pricing is not None or self.limiter is not None

    @property
    def max_request_tokens(self) -> int | None:
        """A request may not exceed the tokens-per-minute limit: it would never be admitted."""
        return self.limiter.limits.tokens_per_minute if self.limiter is not None else None

    async def call(
        self,
        fn: Callable[[], Awaitable[R]],
        *,
        units: int,
        context: CallContext = CallContext(),
        actual_units: Callable[[R], int] | None = None,
        headers: Callable[[R], dict[str, str]] | None = None,
        deadline_seconds: float | None = None,
    ) -> R:
        """Run ``fn`` under breaker, limiter and budget, retrying transient failures.

        ``units`` is the exact estimate (tokens, pages, search units) reserved before each attempt;
        ``actual_units`` reads the provider-reported usage used to settle it. ``deadline_seconds``
        bounds the whole call for a caller who waits (a search): the rate limiter's wait, each
        attempt, and the retries, none of which may end past it.
        """
        loop = asyncio.get_running_loop()
        deadline = None if deadline_seconds is None else loop.time() + deadline_seconds

        def left() -> float | None:
            return None if deadline is None else max(deadline - loop.time(), 0.0)

        estimate = None
        if self.pricing is not None:
            estimate = PaidCall(
                service=self.service, model=self.pricing.model, unit=self.pricing.unit,
                units=units, cost_usd=self.pricing.cost(units), tenant=context.tenant,
                owner=context.owner, shares=context.shares,
            )
        attempt_no = 0

        async def attempt() -> R:
            nonlocal attempt_no
            attempt_no += 1
            reservation = None
            try:
                if self.budget is not None and estimate is not None:
                    reservation = await self.budget.reserve(replace(estimate, attempt=attempt_no))
                slot = await self._admit(units, reservation, left())
            except DeferredError as exc:  # budget, breaker or rate limit: the job waits, unbilled
                tracing.event("deferred", code=exc.code, retry_after=exc.retry_after)
                raise
            call = asyncio.ensure_future(fn())
            try:
                result = await self._answer(call, left())
            except asyncio.CancelledError:
                await asyncio.shield(self._cancelled(call, reservation, slot, actual_units, headers))
                raise
            except IngestError as exc:
                tracing.event("attempt_failed", attempt=attempt_no, code=exc.code)
                await self._failed(reservation, slot, exc)
                raise
            except BaseException:
                # Not a classified answer (a bug): the request may have been billed.
                if reservation is not None:
                    await self._settle_estimate(reservation, "error")
                raise
            await self._succeeded(reservation, slot, result, actual_units, headers)
            return result

        model = self.pricing.model if self.pricing is not None else None
        operation = "embeddings" if self.pricing is not None and self.pricing.unit == "tokens" else self.service
        # GenAI semantic conventions where they fit; the document's text never goes in.
        with tracing.span(f"{operation} {model or self.service}", **{
                "gen_ai.operation.name": operation, "gen_ai.provider.name": self.service,
                "gen_ai.request.model": model, "ingestflow.units.estimated": units,
                "ingestflow.documents": len(context.shares) or None}):
            try:
                result = await call_with_retries(attempt, self.retry, deadline=deadline)
            except IngestError as exc:
                tracing.annotate(**{"ingestflow.outcome": exc.code, "error.type": exc.code,
                                    "ingestflow.attempts": attempt_no})
                raise
            tracing.annotate(**{"ingestflow.outcome": "ok", "ingestflow.attempts": attempt_no})
            return result

    async def _answer(self, call: asyncio.Future[R], seconds: float | None) -> R:
        """The call's answer; one that takes more than ``seconds`` is abandoned, a timeout
        that the provider may have billed. Shielded: cancelling the caller leaves the call
        running for ``_cancelled`` to settle."""
        if seconds is None:
            return await asyncio.shield(call)
        done, _ = await asyncio.wait({call}, timeout=seconds)
        if not done:
            call.cancel()
            raise TransientError("timeout", f"{self.service} did not answer within the caller's deadline",
                                 possibly_billed=True)
        return call.result()

    async def _admit(self, units: int, reservation: Reservation | None, max_wait: float | None) -> int | None:
        """Breaker, then a rate-limit slot (waiting at most ``max_wait``, when given); a
        refusal gives back what was taken before it."""
        probe = False
        try:
            if self.breaker is not None:
                probe = await self.breaker.before_call()
                if probe:
                    tracing.event("breaker_probe")  # the breaker lets this call test the service
            if self.limiter is None:
                return None
            return await self.limiter.acquire(units, max_wait_seconds=max_wait)
        except BaseException:
            if probe and self.breaker is not None:
                await asyncio.shield(self.breaker.release_probe())
            if reservation is not None and self.budget is not None:
                await asyncio.shield(self.budget.release(reservation, outcome="deferred"))
            raise

    async def _cancelled(self, call: asyncio.Future[R], reservation: Reservation | None, slot: int | None,
                         actual_units: Callable[[R], int] | None,
                         headers: Callable[[R], dict[str, str]] | None) -> None:
        """Let a cancelled call finish (briefly) and settle it as billed; if it does not
        finish, count it at the estimate, since the provider may have billed it."""
        done, _ = await asyncio.wait({call}, timeout=CANCEL_GRACE_SECONDS)
        if not done:
            call.cancel()
            if reservation is not None:
                await self._settle_estimate(reservation, "cancelled")
            return
        exc = call.exception()
        if isinstance(exc, IngestError):
            await self._failed(reservation, slot, exc)
        elif exc is not None:
            if reservation is not None:
                await self._settle_estimate(reservation, "error")
        else:
            await self._succeeded(reservation, slot, call.result(), actual_units, headers)

    async def _settle_estimate(self, reservation: Reservation, outcome: str) -> None:
        assert self.budget is not None
        await self.budget.settle(reservation, units=reservation.call.units,
                                 cost_usd=reservation.call.cost_usd, outcome=outcome)

    async def _succeeded(
        self,
        reservation: Reservation | None,
        slot: int | None,
        result: R,
        actual_units: Callable[[R], int] | None,
        headers: Callable[[R], dict[str, str]] | None,
    ) -> None:
        metrics.provider_call(self.service, "ok")
        if reservation is not None and self.budget is not None and self.pricing is not None:
            units = actual_units(result) if actual_units else reservation.call.units
            await self.budget.settle(reservation, units=units, cost_usd=self.pricing.cost(units))
            tracing.annotate(**{"ingestflow.units": units, "ingestflow.cost_usd": float(self.pricing.cost(units)),
                                "gen_ai.usage.input_tokens": units if self.pricing.unit == "tokens" else None})
        try:
            if self.breaker is not None:
                await self.breaker.record_success()
            if self.limiter is not None and slot is not None:
                await self.limiter.sent(slot)
                if headers is not None:
                    await self.limiter.observe(headers=headers(result))
        except DatabaseUnavailable as exc:
            # The answer is paid for and must reach the caller; bookkeeping can lapse.
            log.warning("call_bookkeeping_skipped", service=self.service, error=type(exc).__name__)

    async def _failed(self, reservation: Reservation | None, slot: int | None, exc: IngestError) -> None:
        metrics.provider_call(self.service, exc.code)
        if reservation is not None and self.budget is not None:
            if exc.code in BILLED_FAILURES:
                units = reservation.call.units if exc.billed_units is None else exc.billed_units
                cost = self.pricing.cost(units) if self.pricing is not None else reservation.call.cost_usd
                await self.budget.settle(reservation, units=units, cost_usd=cost, outcome=exc.code)
            elif exc.possibly_billed:  # we will never know: the daily limit counts it
                await self._settle_estimate(reservation, POSSIBLY_BILLED)
            else:
                await self.budget.release(reservation, outcome=exc.code)
        if self.limiter is not None and slot is not None:
            await self.limiter.sent(slot)
        if isinstance(exc, TransientError):
            if exc.code in THROTTLED:
                if self.limiter is not None:
                    await self.limiter.observe(retry_after=exc.retry_after)
            elif self.breaker is not None:
                await self.breaker.record_failure()
