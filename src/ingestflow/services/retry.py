"""The one retry layer: exponential backoff with full jitter, honouring Retry-After.

Provider SDK retries are switched off so that a failing call is retried exactly here,
where the budget and the breaker can see every attempt.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ingestflow.errors import TransientError

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """No defaults here: every value is a setting (config.py), CALL_RETRY_* for the calls
    of one paid request (services/router.py), MAX_ATTEMPTS and RETRY_BASE_SECONDS /
    RETRY_MAX_SECONDS for the attempts of a job (runtime.py)."""

    attempts: int  # calls in all, the first included
    base_seconds: float
    cap_seconds: float

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**attempt)), at least Retry-After."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** max(attempt - 1, 0)))
        delay = (rng or random).uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap_seconds * 4))
        return delay


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[TransientError, float], None] | None = None,
    deadline: float | None = None,
) -> T:
    """Run ``call``, retrying TransientError up to ``policy.attempts`` calls in all.
    ``deadline`` (the event loop's clock): a retry whose wait would end past it is not
    made, the error is raised now; a person waiting on a search never sleeps through a
    provider's long Retry-After."""
    loop = asyncio.get_running_loop()
    for attempt in range(1, policy.attempts + 1):
        try:
            return await call()
        except TransientError as exc:
            if attempt == policy.attempts:
                raise
            delay = policy.delay(attempt, exc.retry_after)
            if deadline is not None and loop.time() + delay >= deadline:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
