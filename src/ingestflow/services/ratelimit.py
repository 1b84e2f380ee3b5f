"""Client-side rate limits (requests and tokens per minute), shared by all workers.

Providers count usage over a sliding minute, so the limiter does too: each admitted
request is a row in ``rate_events``; a request is admitted when the last 60 s of rows
plus it stay within both limits. Admission runs under a per-service advisory lock, on
the database clock, so N workers on M machines behave as one client. When the provider
says to wait (Retry-After on a 429, or exhausted ``x-ratelimit-remaining-*`` headers),
everybody waits until then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from ingestflow.errors import DeferredError
from ingestflow.store import rates
from ingestflow.store.database import Database

WINDOW_SECONDS = 60.1  # the provider's sliding minute, plus a little for clock rounding
# How long ``acquire`` waits in the worker before deferring the job instead. A little over
# one window: waiting for the window to slide (at most WINDOW_SECONDS) is cheaper than a
# deferral, but a longer pause (a provider's Retry-After, many workers queueing) frees the
# worker for jobs that need no slot.
MAX_WAIT_SECONDS = 90.0


@dataclass(frozen=True)
class RateLimits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class RateLimiter:
    def __init__(
        self, db: Database, service: str, limits: RateLimits, *, max_wait_seconds: float = MAX_WAIT_SECONDS
    ) -> None:
        self.db = db
        self.service = service
        self.limits = limits
        self.max_wait_seconds = max_wait_seconds

    async def acquire(self, tokens: int, *, max_wait_seconds: float | None = None) -> int:
        """Wait until a request of ``tokens`` fits and return its slot; DeferredError if
        that is too far away (``max_wait_seconds``: a shorter wait than the limiter's, for
        a call with a deadline)."""
        limit = self.max_wait_seconds if max_wait_seconds is None else min(max_wait_seconds, self.max_wait_seconds)
        waited = 0.0
        while True:
            slot, wait = await self._try_admit(tokens)
            if slot is not None:
                return slot
            if waited + wait > limit:
                raise DeferredError(
                    "rate_limited", f"{self.service} rate limit: next slot in {wait:.1f} s",
                    retry_after=wait,
                )
            await asyncio.sleep(wait)
            waited += wait

    async def sent(self, slot: int) -> None:
        """Re-stamp a request when its response came back. The provider counted it at some
        moment between sending and answering; counting it from the answer keeps our window
        from sliding past a request before the provider's does (slow first calls, clocks)."""
        async with self.db.pool.connection() as conn:
            await rates.restamp(conn, slot)

    async def _try_admit(self, tokens: int) -> tuple[int | None, float]:
        """Admit and return (slot, 0), or (None, seconds until this request could fit)."""
        async with self.db.pool.connection() as conn, conn.transaction():
            await rates.lock(conn, self.service)
            blocked = await rates.blocked_for(conn, self.service)
            if blocked > 0:
                return None, blocked
            window = await rates.window(conn, self.service, seconds=WINDOW_SECONDS)
            wait = self._wait_for(window, tokens)
            if wait > 0:
                return None, wait
            return await rates.admit(conn, self.service, tokens), 0.0

    def _wait_for(self, window: list[tuple[float, int]], tokens: int) -> float:
        """Seconds until enough of the oldest requests leave the window (ages are <= 0)."""
        rpm, tpm = self.limits.requests_per_minute, self.limits.tokens_per_minute
        count, total = len(window), sum(t for _, t in window)
        for i in range(len(window) + 1):
            fits_requests = rpm is None or count - i + 1 <= rpm
            fits_tokens = tpm is None or total + tokens <= tpm
            if fits_requests and fits_tokens:
                return 0.0 if i == 0 else max(0.01, WINDOW_SECONDS + window[i - 1][0] + 0.01)
            if i < len(window):
                total -= window[i][1]
        return WINDOW_SECONDS  # a single request bigger than the whole limit: try later

    async def observe(self, retry_after: float | None = None, headers: Mapping[str, str] | None = None) -> None:
        """Learn from the provider: a Retry-After, or exhausted x-ratelimit-remaining-* headers."""
        pause = retry_after or 0.0
        if headers:
            for kind in ("requests", "tokens"):
                remaining = headers.get(f"x-ratelimit-remaining-{kind}")
                reset = headers.get(f"x-ratelimit-reset-{kind}")
                if remaining is not None and reset and _int(remaining) == 0:
                    pause = max(pause, parse_reset(reset))
        if pause > 0:
            async with self.db.pool.connection() as conn:
                await rates.block(conn, self.service, seconds=pause)


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def parse_reset(value: str) -> float:
    """OpenAI reset durations look like '1s', '6m0s', '250ms', '1h2m3.5s'."""
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    i = 0
    while i < len(value):
        ch = value[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if value.startswith("ms", i) else ch
        if unit not in units or not number:
            return 0.0
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    return total + (float(number) if number else 0.0)
