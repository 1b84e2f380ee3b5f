"""Everything that stands between the pipeline and a paid call, in one place.

For each attempt: the circuit breaker may refuse (deferred), the shared rate limiter
waits for a slot, the budget reserves the estimated cost (or defers), the call runs, and
its outcome settles the ledger and informs the breaker and the limiter. Attempts are
retried here, with backoff and Retry-After: this is ingestflow's single retry layer.
A guard with no breaker, limiter or budget (free local services) only retries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TypeVar

from ingestflow.errors import DeferredError, IngestError, TransientError
from ingestflow.metrics import PROVIDER_CALLS
from ingestflow.services.breaker import CircuitBreaker
from ingestflow.services.budget import Budget, PaidCall, Reservation
from ingestflow.services.ratelimit import RateLimiter
from ingestflow.services.retry import RetryPolicy, call_with_retries

R = TypeVar("R")

# Billed although the response was unusable: the provider counted the tokens.
BILLED_FAILURES = frozenset({"invalid_response"})
# Throttling is not an outage: it informs the limiter, not the breaker.
THROTTLED = frozenset({"rate_limited"})


@dataclass(frozen=True)
class CallContext:
    """Who a call is for, recorded in the ledger."""

    tenant: str | None = None
    document_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Pricing:
    model: str
    unit: str  # "tokens" | "pages"
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
    ) -> R:
        """Run ``fn`` under breaker, limiter and budget, retrying transient failures.

        ``units`` is the exact estimate (tokens, or pages) reserved before each attempt;
        ``actual_units`` reads the provider-reported usage used to settle it.
        """
        estimate = None
        if self.pricing is not None:
            estimate = PaidCall(
                service=self.service, model=self.pricing.model, unit=self.pricing.unit,
                units=units, cost_usd=self.pricing.cost(units), tenant=context.tenant,
                document_id=context.document_id, correlation_id=context.correlation_id,
            )
        attempt_no = 0

        async def attempt() -> R:
            nonlocal attempt_no
            attempt_no += 1
            if self.breaker is not None:
                await self.breaker.before_call()
            slot = await self.limiter.acquire(units) if self.limiter is not None else None
            reservation = None
            if self.budget is not None and estimate is not None:
                reservation = await self.budget.reserve(replace(estimate, attempt=attempt_no))
            try:
                result = await fn()
            except IngestError as exc:
                await self._failed(reservation, slot, exc)
                raise
            except BaseException:
                if reservation is not None:  # cancelled mid-call: do not hold the money
                    await asyncio.shield(self.budget.release(reservation, outcome="aborted"))  # type: ignore[union-attr]
                raise
            await self._succeeded(reservation, slot, result, actual_units, headers)
            return result

        try:
            return await call_with_retries(attempt, self.retry)
        except TransientError as exc:
            if self.breaker is None:
                raise
            # A paid service that keeps failing is an outage, not a bad document: the job
            # waits (without using up its attempts) instead of failing or being faked.
            raise DeferredError(
                "provider_unavailable",
                f"{self.service} failed {self.retry.attempts} times in a row: {exc.message}",
                retry_after=self.breaker.cooldown_seconds,
            ) from exc

    async def _succeeded(
        self,
        reservation: Reservation | None,
        slot: int | None,
        result: R,
        actual_units: Callable[[R], int] | None,
        headers: Callable[[R], dict[str, str]] | None,
    ) -> None:
        PROVIDER_CALLS.labels(self.service, "ok").inc()
        if reservation is not None and self.budget is not None and self.pricing is not None:
            units = actual_units(result) if actual_units else reservation.call.units
            await self.budget.settle(reservation, units=units, cost_usd=self.pricing.cost(units))
        if self.breaker is not None:
            await self.breaker.record_success()
        if self.limiter is not None and slot is not None:
            await self.limiter.sent(slot)
            if headers is not None:
                await self.limiter.observe(headers=headers(result))

    async def _failed(self, reservation: Reservation | None, slot: int | None, exc: IngestError) -> None:
        PROVIDER_CALLS.labels(self.service, exc.code).inc()
        if reservation is not None and self.budget is not None:
            if exc.code in BILLED_FAILURES:
                await self.budget.settle(reservation, units=reservation.call.units,
                                         cost_usd=reservation.call.cost_usd, outcome=exc.code)
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
