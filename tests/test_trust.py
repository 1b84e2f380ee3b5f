"""Promises that must hold against an unlucky operator or a hostile tenant (issue 8): the
lifecycle is enforced by the database, newer versions end older ones, tenants learn
nothing from vector reuse, nothing waits forever or is billed twice, the guard decides
money first, and chunks fit the embedder. Real database, real worker processes, the fake
OpenAI server on loopback."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from ingestflow.catalogue import EMBEDDING_MODELS, LOCAL_MODEL, MOCK_MODEL
from ingestflow.config import ServiceMode, Settings
from ingestflow.errors import DeferredError
from ingestflow.lifecycle import TRANSITIONS
from ingestflow.pipeline.chunking import chunk_markdown
from ingestflow.runtime import open_runtime
from ingestflow.services.breaker import CircuitBreaker
from ingestflow.services.budget import Budget, PaidCall, ServiceLimits
from ingestflow.services.guard import Pricing, ServiceGuard
from ingestflow.services.ratelimit import RateLimiter, RateLimits
from ingestflow.services.retry import RetryPolicy
from ingestflow.store import jobs
from ingestflow.store.jobs import ClaimedJob, LeaseLost
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import real, stages, stop, wait_for, worker_env
from support import event_details, force_stage, ingest, run_cli, sql, start_worker, submit


def drain(settings: Settings) -> int:
    """Run an in-process worker until no job of any document has work due; jobs run."""
    async def main() -> int:
        async with open_runtime(settings) as rt:
            ids = [r[0] for r in sql(settings, "SELECT id FROM documents")]
            worker = rt.drain(ids, concurrency=1)
            await worker.run()
            return worker.processed

    return asyncio.run(main())


def _doc(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


# -- the lifecycle ------------------------------------------------------------------------


def test_the_database_refuses_an_illegal_stage_transition(settings: Settings, tmp_path: Path) -> None:
    submit(settings, [_doc(tmp_path / "d", "a.md", "# A\n\nSome text.")])
    rows = sql(settings, "SELECT from_stage, to_stage FROM stage_transitions")
    assert sorted(rows, key=str) == sorted(((f and str(f), str(t)) for f, t, _ in TRANSITIONS), key=str)
    with pytest.raises(psycopg.errors.CheckViolation, match="illegal stage transition queued -> complete"):
        sql(settings, "UPDATE documents SET stage = 'complete'")
    with pytest.raises(psycopg.errors.CheckViolation, match="illegal stage transition"):
        sql(settings, "UPDATE documents SET stage = 'no-such-stage'")
    sql(settings, "UPDATE documents SET stage = 'parsing'")  # a legal move goes through


# -- superseded versions end --------------------------------------------------------------


def test_a_newer_current_version_ends_an_older_one_in_flight(settings: Settings, tmp_path: Path) -> None:
    path = _doc(tmp_path / "d", "policy.md", "# Policy\n\nVersion one of the policy.")
    [v1] = submit(settings, [path])
    # A worker holds v1's job, half-way through parsing.
    sql(settings, "UPDATE jobs SET state = 'running', owner = 'w-old', lease_until = now() + interval '1 hour',"
                  " attempts = 1")
    sql(settings, "UPDATE documents SET stage = 'parsing'")
    path.write_text("# Policy\n\nVersion two of the policy.")
    [v2], _ = ingest(settings, [path])
    v1_id, v2_id = v1.registration.document_id, v2.registration.document_id
    assert sql(settings, "SELECT id, stage, is_current FROM documents ORDER BY version") == [
        (v1_id, "superseded", False), (v2_id, "complete", True)]
    assert sql(settings, "SELECT state, owner FROM jobs WHERE document_id = %s", (v1_id,)) == [("done", None)]
    assert event_details(settings, v1_id, "superseded", "superseded")[0]["by"] == str(v2_id)

    async def old_worker_writes() -> None:  # the old worker's next stage transaction
        async with open_runtime(settings) as rt, rt.db.pool.connection() as conn:
            job_id = sql(settings, "SELECT id FROM jobs WHERE document_id = %s", (v1_id,))[0][0]
            await jobs.fence(conn, ClaimedJob(job_id, v1_id, 1), "w-old", 60)

    with pytest.raises(LeaseLost):
        asyncio.run(old_worker_writes())


def test_a_job_whose_document_is_retired_ends_at_once(settings: Settings, tmp_path: Path) -> None:
    [sub] = submit(settings, [_doc(tmp_path / "d", "a.md", "# A\n\nText.")])
    sql(settings, "UPDATE documents SET stage = 'superseded', superseded_at = now()")
    assert drain(settings) == 0
    assert sql(settings, "SELECT state, attempts, owner FROM jobs") == [("done", 1, None)]
    assert sub.registration.document_id


def test_a_stage_conflict_never_leaves_a_job_running(settings: Settings, tmp_path: Path) -> None:
    """A document found in a stage whose inputs are missing: retried as a counted attempt,
    then failed with the reason; never running, never looping."""
    submit(settings, [_doc(tmp_path / "d", "a.md", "# A\n\nText.")])
    force_stage(settings, "chunking", "true")  # no parsed text behind it
    for _ in range(50):  # each retry is due after a short backoff
        drain(settings)
        if sql(settings, "SELECT state FROM jobs")[0][0] != "ready":
            break
        time.sleep(0.2)
    assert sql(settings, "SELECT stage, error_code FROM documents") == [("failed", "stage_conflict")]
    assert sql(settings, "SELECT state, attempts FROM jobs") == [("failed", settings.max_attempts)]


# -- tenants ------------------------------------------------------------------------------


def test_vector_reuse_does_not_cross_tenants(settings: Settings, tmp_path: Path) -> None:
    text = "# Merger\n\nThe board approved the confidential merger with Northwind on May 3."
    path = _doc(tmp_path / "d", "memo.md", text)
    ingest(settings, [path], tenant="alpha")
    [b], _ = ingest(settings, [path], tenant="beta")  # the same passage, another tenant
    done = event_details(settings, b.registration.document_id, "stage_done", "embedded")[0]
    assert (done["reused"], done["embedded"]) == (0, 1)  # beta learns nothing about alpha
    path.write_text(text + "\n\n## Addendum\n\nA second paragraph.")
    [b2], _ = ingest(settings, [path], tenant="beta")  # within a tenant, reuse still works
    done = event_details(settings, b2.registration.document_id, "stage_done", "embedded")[0]
    assert done["reused"] >= 1


# -- nothing waits forever, nothing is billed twice ----------------------------------------


def test_a_deferral_ends_after_its_maximum_age(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake, daily_cost_limit_openai=0.0)
    submit(s, [_doc(tmp_path / "d", "a.md", "# A\n\nSome text to embed.")])
    w = start_worker(s, tmp_path / "w.log", **worker_env(s), MAX_DEFER_SECONDS="1.5")
    try:
        wait_for(lambda: stages(s) == {"failed": 1}, 60, "the deferral to time out")
    finally:
        stop(w)
    code, message = sql(s, "SELECT error_code, error_message FROM documents")[0]
    assert code == "deferred_too_long"
    assert "MAX_DEFER_SECONDS" in message and "budget_exhausted" in message
    assert fake.stats["requests"] == 0


def test_a_provider_failing_after_its_retries_uses_up_attempts(
        settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake, call_retry_attempts=2, breaker_failure_threshold=1000, breaker_min_calls=1000)
    submit(s, [_doc(tmp_path / "d", "a.md", "# A\n\nSome text to embed.")])
    fake.faults.set_rate(1.0, ["500"])
    env = {**worker_env(s), "CALL_RETRY_ATTEMPTS": "2", "BREAKER_FAILURE_THRESHOLD": "1000",
           "BREAKER_MIN_CALLS": "1000", "MAX_ATTEMPTS": "3"}
    w = start_worker(s, tmp_path / "w.log", **env)
    try:
        wait_for(lambda: stages(s) == {"failed": 1}, 60, "the document to fail")
    finally:
        stop(w)
    code, message = sql(s, "SELECT error_code, error_message FROM documents")[0]
    assert code == "server_error" and message.startswith("gave up after 3 attempts")
    assert fake.stats["requests"] == 6  # 3 attempts x 2 calls: not an endless free deferral
    assert sql(s, "SELECT count(*) FROM ledger WHERE state = 'released' AND outcome = 'server_error'")[0][0] == 6


def test_a_billed_call_is_settled_as_billed_when_the_lease_is_lost(
        settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake)
    submit(s, [_doc(tmp_path / "d", "a.md", "# A\n\nSome text to embed, slowly.")])
    fake.faults.inject("slow:1.2")  # under the 1.5 s client timeout
    w = start_worker(s, tmp_path / "w.log", **worker_env(s))
    try:
        wait_for(lambda: fake.stats["requests"] == 1, 30, "the call to be in flight")
        sql(s, "UPDATE jobs SET owner = 'thief'")  # another worker took the job meanwhile
        wait_for(lambda: sql(s, "SELECT count(*) FROM ledger WHERE state <> 'reserved'")[0][0] == 1, 30,
                 "the call to be settled")
        time.sleep(0.5)
    finally:
        stop(w)
    assert sql(s, "SELECT state, outcome, units FROM ledger") == [("settled", "ok", fake.stats["tokens_billed"])]
    assert sql(s, "SELECT count(*) FROM embeddings")[0][0] == 0  # the loser wrote nothing
    assert sql(s, "SELECT owner FROM jobs") == [("thief",)]


def test_reservations_of_a_dead_worker_are_closed_once_its_lease_expires(settings: Settings, tmp_path: Path) -> None:
    submit(settings, [_doc(tmp_path / "d", "a.md", "# A\n\nText.")])
    sql(settings, "UPDATE jobs SET state = 'running', owner = 'w-dead', lease_until = now() - interval '1 second'")
    document = sql(settings, "SELECT id FROM documents")[0][0]

    async def main() -> None:
        async with open_runtime(settings) as rt:
            budget = Budget(rt.db, limits={"openai": ServiceLimits(Decimal(1))}, daily_total_usd=None,
                            enforce=True, alert_ratio=settings.cost_alert_ratio)
            call = PaidCall("openai", "m", "tokens", 1000, Decimal("0.02"), owner="w-dead", shares=((document, 1000),))
            dead = await budget.reserve(call)
            live = await budget.reserve(PaidCall("openai", "m", "tokens", 10, Decimal("0.01"), owner="w-other"))
            sql(settings, "UPDATE jobs SET lease_until = now() + interval '1 hour', owner = 'w-other'")
            assert await budget.sweep() == 1
            assert sql(settings, "SELECT id, state, outcome FROM ledger ORDER BY id") == [
                (dead.ledger_id, "settled", "abandoned"), (live.ledger_id, "reserved", None)]
            spent = sql(settings, "SELECT amount FROM spend_counters WHERE service = 'openai' AND kind = 'daily_cost'")
            assert spent == [(Decimal("0.03"),)]  # the abandoned call counts at its estimate
            await budget.settle(dead, units=500, cost_usd=Decimal("0.01"))  # the worker was only slow
            assert sql(settings, "SELECT state, units, cost_usd FROM ledger WHERE id = %s", (dead.ledger_id,)) == [
                ("settled", 500, Decimal("0.01"))]
            spent = sql(settings, "SELECT amount FROM spend_counters WHERE service = 'openai' AND kind = 'daily_cost'")
            assert spent == [(Decimal("0.02"),)]
            # the document's share follows the settlement
            assert sql(settings, "SELECT units, cost_usd FROM ledger_shares WHERE ledger_id = %s", (dead.ledger_id,)) == [
                (500, Decimal("0.01"))]

    asyncio.run(main())


# -- the guard decides money first ---------------------------------------------------------


def test_a_call_deferred_for_money_holds_no_rate_slot_and_no_probe(settings: Settings) -> None:
    async def main() -> None:
        async with open_runtime(settings) as rt:
            def breaker_for(owner: str) -> CircuitBreaker:
                return CircuitBreaker(rt.db, "openai", owner=owner, cooldown_seconds=0.01,
                                      failure_threshold=settings.breaker_failure_threshold,
                                      failure_rate=settings.breaker_failure_rate,
                                      min_calls=settings.breaker_min_calls)

            def budget_of(dollars: Decimal) -> Budget:
                return Budget(rt.db, limits={"openai": ServiceLimits(dollars)}, daily_total_usd=None,
                              enforce=True, alert_ratio=settings.cost_alert_ratio)

            once = RetryPolicy(attempts=1, base_seconds=settings.call_retry_base_seconds,
                               cap_seconds=settings.call_retry_cap_seconds)
            breaker = breaker_for("me")
            limiter = RateLimiter(rt.db, "openai", RateLimits(requests_per_minute=100))
            budget = budget_of(Decimal("0.0001"))
            guard = ServiceGuard("openai", once, Pricing("m", "tokens", lambda n: Decimal(n) / 1000),
                                 breaker=breaker, limiter=limiter, budget=budget)
            for _ in range(settings.breaker_failure_threshold):  # open the breaker; its cool-down is over at once
                await breaker.record_failure()
            await asyncio.sleep(0.05)
            with pytest.raises(DeferredError) as exc:
                await guard.call(lambda: asyncio.sleep(0), units=1000)
            assert exc.value.code == "budget_exhausted"
            assert sql(settings, "SELECT count(*) FROM rate_events")[0][0] == 0
            assert sql(settings, "SELECT state, probe_owner FROM breakers") == [("open", None)]
            # A call the breaker defers gives its reservation back.
            generous = budget_of(Decimal(100))
            other = breaker_for("someone-else")
            assert await other.before_call() is True  # someone else is the probe now
            guard = ServiceGuard("openai", once, Pricing("m", "tokens", lambda n: Decimal(n) / 1000),
                                 breaker=breaker, limiter=limiter, budget=generous)
            with pytest.raises(DeferredError) as exc:
                await guard.call(lambda: asyncio.sleep(0), units=10)
            assert exc.value.code == "breaker_open"
            assert sql(settings, "SELECT state, outcome FROM ledger") == [("released", "deferred")]
            assert sql(settings, "SELECT count(*) FROM rate_events")[0][0] == 0

    asyncio.run(main())


# -- chunks fit the embedder ---------------------------------------------------------------


def test_chunks_are_capped_by_the_chosen_embedder(settings: Settings) -> None:
    local = settings.model_copy(update={"embeddings_mode": ServiceMode.REAL, "embeddings_provider": "local"})

    async def chunking(s: Settings):  # noqa: ANN202
        async with open_runtime(s) as rt:
            return rt.chunking()

    # Unset, each model's own chunk size and overlap (its catalogue entry).
    for s, model in ((local, LOCAL_MODEL), (settings, MOCK_MODEL)):
        spec = EMBEDDING_MODELS[model]
        own = asyncio.run(chunking(s))
        assert (own.max_tokens, own.overlap_tokens) == (spec.chunk_tokens, spec.chunk_overlap_tokens)
    # Set, as configured, but never more than the model reads (the overlap shrinks in proportion).
    config = asyncio.run(chunking(local.model_copy(update={"chunk_max_tokens": 512, "chunk_overlap_tokens": 64})))
    assert config.max_tokens == 127 and config.overlap_tokens == 64 * 127 // 512
    mock = asyncio.run(chunking(settings.model_copy(update={"chunk_max_tokens": 300, "chunk_overlap_tokens": 30})))
    assert (mock.max_tokens, mock.overlap_tokens) == (300, 30)
    long = "# Report\n\n" + " ".join(f"Finding number {i} concerns the eastern warehouse." for i in range(400))
    chunks = chunk_markdown(long, config=config)
    assert len(chunks) > 10 and max(c.token_count for c in chunks) <= 127


# -- safe defaults for money ---------------------------------------------------------------


def test_doctor_and_costs_show_every_limit_in_force(settings: Settings, fake: FakeOpenAI) -> None:
    s = real(settings, fake)
    env = {k: v for k, v in worker_env(s).items() if not k.startswith(("DAILY_", "HOURLY_"))}
    costs = run_cli(s, "costs", **env)
    assert costs.returncode == 0, costs.stderr
    openai_row = next(line for line in costs.stdout.splitlines() if line.strip("│ ").startswith("openai"))
    assert "5.00" in openai_row and "100" in openai_row
    doctor = run_cli(s, "doctor", **env)
    assert "daily_cost_limit_openai" in doctor.stdout and "hourly_rate_limit_openai" in doctor.stdout
    lifted = run_cli(s, "costs", **env, DAILY_COST_LIMIT_OPENAI="none")
    openai_row = next(line for line in lifted.stdout.splitlines() if line.strip("│ ").startswith("openai"))
    assert "5.00" not in openai_row

