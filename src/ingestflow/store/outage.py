"""Riding out a lost database connection (restart, failover, ``pg_terminate_backend``).

``psycopg.OperationalError`` covers every way a connection can go away (and deadlocks,
which are worth a retry too). Code that must not lose what it holds, such as the cost
of a call the provider already billed or the vectors it returned, retries its
transaction here until the database answers again or the deadline passes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg

from ingestflow.logging import get_logger

T = TypeVar("T")
DatabaseUnavailable = psycopg.OperationalError
log = get_logger("ingestflow.db")


def backoff(failures: int, cap: float = 10.0) -> float:
    """Exponential with full jitter: many workers do not reconnect in lockstep."""
    return random.uniform(0.1, min(cap, 0.25 * 2 ** failures))


async def until_reachable(call: Callable[[], Awaitable[T]], *, seconds: float, what: str) -> T:
    """``await call()``, retried while the database is unreachable, for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    failures = 0
    while True:
        try:
            return await call()
        except DatabaseUnavailable as exc:
            failures += 1
            delay = backoff(failures)
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database_unavailable", doing=what, retry_in=round(delay, 2),
                        error=type(exc).__name__)
            await asyncio.sleep(delay)
