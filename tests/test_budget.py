"""Budget, breaker and rate limiter on the real database, raced by real processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest

from ingestflow.config import Settings
from ingestflow.errors import DeferredError
from ingestflow.services.breaker import CircuitBreaker
from ingestflow.services.budget import Budget, PaidCall, ServiceLimits
from ingestflow.services.ratelimit import RateLimiter, RateLimits, parse_reset
from ingestflow.store.database import Database
from support import settings_env, sql

RACER = textwrap.dedent('''
    import asyncio, json, os, sys
    from decimal import Decimal
    from ingestflow.config import load_settings
    from ingestflow.errors import DeferredError
    from ingestflow.services.budget import Budget, PaidCall, ServiceLimits
    from ingestflow.store.database import Database

    async def main():
        s = load_settings()
        db = Database(s.database_url.get_secret_value(), max_size=2)
        await db.pool.open()
        budget = Budget(db, limits={"openai": ServiceLimits(Decimal(os.environ["LIMIT_USD"]),
                                                             int(os.environ["LIMIT_REQUESTS"]) or None)},
                        daily_total_usd=None, enforce=True, alert_ratio=s.cost_alert_ratio)
        won = 0
        while True:
            try:
                r = await budget.reserve(PaidCall("openai", "text-embedding-3-small", "tokens", 1000,
                                                  Decimal("0.001")))
            except DeferredError as exc:
                print(json.dumps({"won": won, "code": exc.code, "retry_after": exc.retry_after}))
                break
            await budget.settle(r, units=1000, cost_usd=Decimal("0.001"))
            won += 1
        await db.close()

    asyncio.run(main())
''')


def race(settings: Settings, processes: int, limit_usd: str, limit_requests: int) -> list[dict]:
    env = settings_env(settings, LIMIT_USD=limit_usd, LIMIT_REQUESTS=str(limit_requests))
    procs = [subprocess.Popen([sys.executable, "-c", RACER], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    return [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]


def test_racing_processes_never_exceed_the_daily_limit(settings: Settings) -> None:
    results = race(settings, 4, limit_usd="0.0105", limit_requests=0)  # room for exactly 10 calls
    assert sum(r["won"] for r in results) == 10
    assert {r["code"] for r in results} == {"budget_exhausted"}
    assert all(0 < r["retry_after"] <= 86_401 for r in results)
    total, count = sql(settings, "SELECT sum(cost_usd), count(*) FROM ledger WHERE state = 'settled'")[0]
    assert (total, count) == (Decimal("0.0100000000"), 10)
    counter = sql(settings, "SELECT amount FROM spend_counters WHERE service = 'openai' AND kind = 'daily_cost'")[0][0]
    assert counter == Decimal("0.01")


def test_hourly_request_limit_holds_across_processes(settings: Settings) -> None:
    results = race(settings, 4, limit_usd="100", limit_requests=7)
    assert sum(r["won"] for r in results) == 7
    assert all(r["retry_after"] <= 3601 for r in results)


def test_release_gives_back_and_alert_fires_once(settings: Settings) -> None:
    async def main() -> None:
        db = Database(settings.database_url.get_secret_value())
        await db.pool.open()
        budget = Budget(db, limits={"openai": ServiceLimits(Decimal("1.00"))}, daily_total_usd=None,
                        enforce=True, alert_ratio=0.8)
        call = PaidCall("openai", "text-embedding-3-small", "tokens", 1, Decimal("0.50"))
        first = await budget.reserve(call)
        await budget.release(first, outcome="server_error")  # not billed: money comes back
        for _ in range(2):
            await budget.settle(await budget.reserve(call), units=1, cost_usd=Decimal("0.45"))
        with pytest.raises(DeferredError):
            await budget.reserve(call)
        await db.close()

    asyncio.run(main())
    states = sql(settings, "SELECT state, cost_usd FROM ledger ORDER BY id")
    assert states == [("released", 0), ("settled", Decimal("0.45")), ("settled", Decimal("0.45"))]
    alerts = sql(settings, "SELECT detail->>'service' FROM events WHERE kind = 'budget_alert'")
    assert alerts == [("openai",)]  # 0.95 of 1.00 crossed 80% once (total has no limit)


def test_tracking_disabled_records_but_does_not_enforce(settings: Settings) -> None:
    async def main() -> int:
        db = Database(settings.database_url.get_secret_value())
        await db.pool.open()
        budget = Budget(db, limits={"openai": ServiceLimits(Decimal("0.001"), 1)}, daily_total_usd=None,
                        enforce=False, alert_ratio=settings.cost_alert_ratio)
        for _ in range(5):
            r = await budget.reserve(PaidCall("openai", "m", "tokens", 10, Decimal("0.01")))
            await budget.settle(r, units=10, cost_usd=Decimal("0.01"))
        await db.close()
        return 5

    asyncio.run(main())
    assert sql(settings, "SELECT count(*), sum(cost_usd) FROM ledger WHERE state = 'settled'")[0] == (5, Decimal("0.05"))


def test_breaker_opens_lets_one_probe_through_and_closes(settings: Settings) -> None:
    async def main() -> None:
        db = Database(settings.database_url.get_secret_value())
        await db.pool.open()
        a, b = (CircuitBreaker(db, "openai", owner=owner, failure_threshold=3, cooldown_seconds=0.5,
                               failure_rate=settings.breaker_failure_rate, min_calls=settings.breaker_min_calls)
                for owner in ("worker-a", "worker-b"))
        for _ in range(3):
            await a.before_call()
            await a.record_failure()
        for breaker in (a, b):  # open for everyone, not just the worker that saw failures
            with pytest.raises(DeferredError) as exc:
                await breaker.before_call()
            assert exc.value.code == "breaker_open"
        await asyncio.sleep(0.6)
        await b.before_call()  # b becomes the single probe
        with pytest.raises(DeferredError):
            await a.before_call()
        await b.record_success()
        await a.before_call()
        await db.close()

    asyncio.run(main())
    assert sql(settings, "SELECT state, consecutive_failures FROM breakers")[0] == ("closed", 0)


def test_breaker_opens_on_failure_rate(settings: Settings) -> None:
    async def main() -> None:
        db = Database(settings.database_url.get_secret_value())
        await db.pool.open()
        breaker = CircuitBreaker(db, "openai", owner="w", failure_threshold=100, failure_rate=0.5,
                                 min_calls=10, cooldown_seconds=30)
        for i in range(9):  # alternating: never 2 consecutive failures, but a 50% failure rate
            await (breaker.record_failure() if i % 2 == 0 else breaker.record_success())
        await breaker.before_call()  # 5 of 9: below the 10-call minimum
        await breaker.record_success()  # 5 of 10 = 50%, but a success never opens it
        await breaker.record_failure()  # 6 of 11
        with pytest.raises(DeferredError):
            await breaker.before_call()
        await db.close()

    asyncio.run(main())
    state, calls, failures = sql(settings, "SELECT state, window_calls, window_failures FROM breakers")[0]
    assert (state, calls, failures) == ("open", 11, 6)


def test_failed_probe_reopens(settings: Settings) -> None:
    async def main() -> str:
        db = Database(settings.database_url.get_secret_value())
        await db.pool.open()
        a = CircuitBreaker(db, "llamaparse", owner="w", failure_threshold=1, cooldown_seconds=0.3,
                           failure_rate=settings.breaker_failure_rate, min_calls=settings.breaker_min_calls)
        await a.record_failure()
        await asyncio.sleep(0.35)
        await a.before_call()
        await a.record_failure()
        with pytest.raises(DeferredError):
            await a.before_call()
        await db.close()
        return "ok"

    assert asyncio.run(main()) == "ok"
    assert sql(settings, "SELECT state FROM breakers")[0][0] == "open"


def test_rate_limiter_shares_a_sliding_minute(settings: Settings) -> None:
    async def main() -> tuple[float, str]:
        db = Database(settings.database_url.get_secret_value())
        await db.pool.open()
        limits = RateLimits(requests_per_minute=3, tokens_per_minute=1000)
        one = RateLimiter(db, "openai", limits, max_wait_seconds=0.0)
        two = RateLimiter(db, "openai", limits, max_wait_seconds=0.0)
        await one.acquire(100)
        await two.acquire(100)
        await one.acquire(100)
        with pytest.raises(DeferredError) as exc:  # a fourth request in the same minute
            await two.acquire(100)
        wait = exc.value.retry_after
        await db.close()
        return wait, exc.value.code

    wait, code = asyncio.run(main())
    assert code == "rate_limited" and 55 < wait <= 60.2


def test_rate_limiter_token_budget_and_provider_pause(settings: Settings) -> None:
    async def main() -> None:
        db = Database(settings.database_url.get_secret_value())
        await db.pool.open()
        limiter = RateLimiter(db, "openai", RateLimits(tokens_per_minute=1000), max_wait_seconds=0.0)
        await limiter.acquire(900)
        with pytest.raises(DeferredError):
            await limiter.acquire(200)  # 1,100 tokens would exceed the minute's 1,000
        other = RateLimiter(db, "llamaparse", RateLimits(), max_wait_seconds=0.0)
        await other.observe(retry_after=30)
        with pytest.raises(DeferredError) as exc:
            await other.acquire(0)
        assert 25 < exc.value.retry_after <= 30
        await other.observe(headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "45s"})
        with pytest.raises(DeferredError) as exc:
            await other.acquire(0)
        assert 40 < exc.value.retry_after <= 45
        await db.close()

    asyncio.run(main())


def test_parse_reset_durations() -> None:
    assert parse_reset("1s") == 1.0
    assert parse_reset("6m0s") == 360.0
    assert parse_reset("250ms") == pytest.approx(0.25)
    assert parse_reset("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_reset("bogus") == 0.0
