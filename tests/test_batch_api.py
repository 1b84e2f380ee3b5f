"""Embedding through the OpenAI Batch API, end to end against the fake OpenAI's Files and
Batches endpoints: documents wait without a lease, results are validated and stored, the
ledger shows exactly the batch price, and nothing is embedded (or paid) twice across
failed lines, expiry, cancellation and a killed worker."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from ingestflow.catalogue import openai_model
from ingestflow.config import Settings
from ingestflow.operations.errors import Refused
from ingestflow.services.costs import embedding_cost
from ingestflow.testing.fake_openai import FakeOpenAI, fake_vector
from provider_support import KEY, bad_vectors, real, stages, stop, wait_for, worker_env, write_docs
from support import run_cli, sql, start_worker

POLL = 0.2  # EMBEDDING_BATCH_POLL_SECONDS in these tests


def batch_settings(settings: Settings, fake: FakeOpenAI, **extra: object) -> Settings:
    return real(settings, fake, embedding_batch_poll_seconds=POLL, **extra)


def submit(s: Settings, folder: Path, *, batch_api: bool = True) -> list[uuid.UUID]:
    from ingestflow.operations.documents import submit_paths
    from ingestflow.runtime import open_runtime

    async def main() -> list[uuid.UUID]:
        async with open_runtime(s) as rt:
            done = await submit_paths(rt, [folder], "default", batch_api=batch_api)
            return [d.registration.document_id for d in done if d.registration]

    return asyncio.run(main())


def work(s: Settings, ids: list[uuid.UUID], *, rounds: int = 40) -> int:
    """Run an in-process worker until the documents have no work due; again after each
    batch poll interval, until every one is complete (or ``rounds`` runs). Returns runs."""
    from ingestflow.runtime import open_runtime

    async def main() -> int:
        async with open_runtime(s) as rt:
            for n in range(1, rounds + 1):
                await rt.drain(ids).run()
                if stages(s) == {"complete": len(ids)}:
                    return n
                await asyncio.sleep(POLL)
        raise AssertionError(f"not complete after {rounds} rounds: {stages(s)}")

    return asyncio.run(main())


def one_round(s: Settings, ids: list[uuid.UUID]) -> None:
    """One in-process worker run until the documents have no work due now."""
    from ingestflow.runtime import open_runtime

    async def main() -> None:
        async with open_runtime(s) as rt:
            await rt.drain(ids).run()

    asyncio.run(main())


def wrong_vectors(s: Settings, model: str = "text-embedding-3-small") -> int:
    """Chunks whose stored vector is not the one the fake gives their input, the context
    line (title and heading path) and text (as float16, the stored type)."""
    import numpy as np
    from pgvector.psycopg import register_vector

    from ingestflow.pipeline.chunking import chunk_input, context_line

    assert s.database_url is not None
    with psycopg.connect(s.database_url.get_secret_value()) as conn:
        register_vector(conn)
        rows = conn.execute("SELECT d.title, c.metadata -> 'heading_path', (d.chunking ->> 'max_tokens')::int, c.text,"
                            " e.embedding FROM chunks c JOIN documents d ON d.id = c.document_id"
                            " JOIN embeddings e ON e.chunk_id = c.id").fetchall()
    inputs = [(chunk_input(context_line(title, tuple(path), size), text), vec) for title, path, size, text, vec in rows]
    return sum(not np.array_equal(vec.to_numpy(), fake_vector(i, 1536, model).astype(np.float16)) for i, vec in inputs)


def chunk_tokens(s: Settings) -> int:
    return sql(s, "SELECT sum(token_count) FROM chunks")[0][0]


def ledger(s: Settings) -> list[tuple[str, str, int, Decimal]]:
    return sql(s, "SELECT model, state, units, cost_usd FROM ledger ORDER BY id")


def test_batch_ingest_end_to_end_at_exactly_half_price(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = batch_settings(settings, fake)
    write_docs(tmp_path / "docs", 6)
    ids = submit(s, tmp_path / "docs")
    one_round(s, ids)
    # parsed and chunked, then waiting for the batch without a lease, and saying so
    waiting = sql(s, "SELECT d.stage, j.state, j.owner, j.deferred_reason FROM documents d"
                     " JOIN jobs j ON j.document_id = d.id")
    assert {(stage, state, owner) for stage, state, owner, _ in waiting} == {("embedding", "ready", None)}
    assert all(reason.startswith("awaiting_batch: waiting for OpenAI batch batch_") for *_, reason in waiting)
    assert fake.stats["batches"] == 1 and fake.stats["requests"] == 0

    work(s, ids)
    chunks = sql(s, "SELECT count(*) FROM chunks")[0][0]
    assert sql(s, "SELECT count(*) FROM embeddings")[0][0] == chunks == fake.stats["batch_inputs"]
    assert bad_vectors(s) == 0
    assert fake.stats["requests"] == 0  # not one synchronous request
    tokens = chunk_tokens(s)
    spec = openai_model("text-embedding-3-small")
    [(model, state, units, cost)] = ledger(s)
    assert (model, state, units) == ("text-embedding-3-small (batch)", "settled", tokens)
    assert units == fake.stats["batch_tokens_billed"]
    assert cost == embedding_cost(spec, tokens) / 2 == embedding_cost(spec, tokens, batch=True)
    # each document's share is its own tokens, and the shares add up to the cent
    shares = dict(sql(s, "SELECT document_id, units FROM ledger_shares"))
    per_document = dict(sql(s, "SELECT document_id, sum(token_count) FROM chunks GROUP BY document_id"))
    assert shares == per_document
    assert sql(s, "SELECT sum(cost_usd) FROM ledger_shares")[0][0] == cost
    assert sql(s, "SELECT state, status, embedded FROM embedding_batches") == [("closed", "completed", chunks)]
    assert wrong_vectors(s) == 0  # each line's vectors went to its own chunks, in order
    from support import search

    from ingestflow.pipeline.chunking import chunk_input, context_line

    title, path, size, text = sql(s, "SELECT d.title, c.metadata -> 'heading_path', (d.chunking ->> 'max_tokens')::int,"
                                     " c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
                                     " ORDER BY c.id LIMIT 1")[0]
    query = chunk_input(context_line(title, tuple(path), size), text)
    assert search(s, query, k=1, mode="vector")[0].text == text  # the same input embeds to the same vector


def test_failed_lines_go_again_synchronously_and_nothing_is_paid_twice(settings: Settings, fake: FakeOpenAI,
                                                                      tmp_path: Path) -> None:
    s = batch_settings(settings, fake, embedding_batch_size=4)  # small lines, so faults hit a few chunks
    write_docs(tmp_path / "docs", 4)
    fake.line_faults.inject("500", "nan", "timeout")
    ids = submit(s, tmp_path / "docs")
    work(s, ids)
    chunks = sql(s, "SELECT count(*) FROM chunks")[0][0]
    assert sql(s, "SELECT count(*) FROM embeddings")[0][0] == chunks
    assert bad_vectors(s) == 0 and wrong_vectors(s) == 0
    assert fake.stats["batches"] == 1
    failed_inputs = sql(s, "SELECT count(*) FROM embedding_batch_chunks WHERE outcome = 'failed'")[0][0]
    assert failed_inputs == 12  # three lines of four
    # the failed lines went once more, synchronously; every other chunk came from the batch
    assert fake.stats["requests"] >= 1 and fake.stats["tokens_billed"] == sql(
        s, "SELECT sum(tokens) FROM embedding_batch_chunks WHERE outcome = 'failed'")[0][0]
    batch_units = sql(s, "SELECT sum(units) FROM ledger WHERE model LIKE '%%(batch)'")[0][0]
    assert batch_units == fake.stats["batch_tokens_billed"]  # the NaN line was answered, so billed
    sync_units = sql(s, "SELECT sum(units) FROM ledger WHERE model NOT LIKE '%%(batch)'")[0][0]
    assert sync_units == fake.stats["tokens_billed"]
    failures = sql(s, "SELECT detail->>'reason' FROM events WHERE kind = 'batch_line_failed'")
    assert any("server_error" in r[0] or "500" in r[0] for r in failures)
    assert any("invalid_response" in r[0] for r in failures)


@pytest.mark.parametrize("ending", ["expired", "cancelled"])
def test_an_ended_batch_resubmits_only_what_never_ran(settings: Settings, fake: FakeOpenAI, tmp_path: Path,
                                                      ending: str) -> None:
    s = batch_settings(settings, fake, embedding_batch_size=4)
    write_docs(tmp_path / "docs", 4)
    ids = submit(s, tmp_path / "docs")
    if ending == "expired":
        fake.batch_faults.inject("expired")
    from ingestflow.runtime import open_runtime

    async def submit_then_end() -> None:
        async with open_runtime(s) as rt:
            await rt.drain(ids).run()  # the batch is submitted
            if ending == "cancelled":  # someone cancels them in the provider's console after a poll
                for batch_id in list(fake.batches):
                    await rt.services.batch.client.status(batch_id)
                    await rt.services.batch.client.cancel(batch_id)

    asyncio.run(submit_then_end())
    work(s, ids)
    chunks = sql(s, "SELECT count(*) FROM chunks")[0][0]
    assert sql(s, "SELECT count(*) FROM embeddings")[0][0] == chunks
    assert wrong_vectors(s) == 0
    outcomes = {(status, outcome): n for status, outcome, n in sql(
        s, "SELECT b.status, bc.outcome, count(*) FROM embedding_batch_chunks bc"
           " JOIN embedding_batches b ON b.id = bc.batch_id GROUP BY 1, 2")}
    assert outcomes.get((ending, "not_run"), 0) > 0  # the batch ended with work undone
    # each chunk embedded by exactly one batch; what one never ran went into a later one
    assert outcomes.get((ending, "embedded"), 0) + outcomes[("completed", "embedded")] == chunks
    assert fake.stats["batch_inputs"] == sum(outcomes.values())
    # every chunk billed once: the provider's count is the corpus's, and so is the ledger's
    assert fake.stats["batch_tokens_billed"] == chunk_tokens(s)
    assert sql(s, "SELECT sum(units) FROM ledger WHERE state = 'settled'")[0][0] == chunk_tokens(s)
    assert fake.stats["requests"] == 0
    assert {r[0] for r in sql(s, "SELECT status FROM embedding_batches")} == {ending, "completed"}


def test_a_batch_in_flight_survives_a_killed_worker(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.batch_polls_until_done = 10_000  # the batch runs until the test lets it finish
    s = batch_settings(settings, fake)
    write_docs(tmp_path / "docs", 5)
    submit(s, tmp_path / "docs")
    env = {**worker_env(s), "EMBEDDING_BATCH_POLL_SECONDS": str(POLL)}
    w = start_worker(s, tmp_path / "w1.log", **env)
    try:
        wait_for(lambda: fake.stats["batches"] == 1 and sql(
            s, "SELECT count(*) FROM embedding_batches WHERE provider_batch_id IS NOT NULL")[0][0] == 1,
            60, "the batch to be submitted")
        time.sleep(3 * POLL)  # polled a few times meanwhile
    finally:
        w.send_signal(signal.SIGKILL)
        w.wait(timeout=30)
    fake.batch_polls_until_done = 1
    w = start_worker(s, tmp_path / "w2.log", **env)
    try:
        wait_for(lambda: stages(s) == {"complete": 5}, 60, "the batch to be applied by another worker")
    finally:
        stop(w)
    assert fake.stats["batches"] == 1  # found again by its durable id, not sent twice
    assert fake.stats["batch_tokens_billed"] == chunk_tokens(s) == sql(s, "SELECT sum(units) FROM ledger")[0][0]


def test_auto_mode_batches_only_a_backlog(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    write_docs(tmp_path / "small", 2)
    write_docs(tmp_path / "big", 6)
    # One slot: two slots may split the backlog between their claims (SKIP LOCKED), and
    # each would send its share as a batch of its own, which is fine but not what is counted.
    s = batch_settings(settings, fake, embedding_batch_api="auto", embedding_batch_auto_backlog=3,
                       worker_concurrency=1)
    work(s, submit(s, tmp_path / "small", batch_api=False))
    assert fake.stats["batches"] == 0 and fake.stats["requests"] == 1  # two documents: synchronous
    ids = submit(s, tmp_path / "big", batch_api=False)  # four new (two are the same as before)
    assert len(set(ids)) == 6 and sql(s, "SELECT count(*) FROM documents")[0][0] == 6
    work(s, ids)
    assert fake.stats["batches"] == 1 and fake.stats["requests"] == 1  # four queued: a backfill


def test_the_budget_holds_a_batch_back(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = batch_settings(settings, fake, daily_cost_limit_openai=0.0000001)
    write_docs(tmp_path / "docs", 3)
    ids = submit(s, tmp_path / "docs")
    one_round(s, ids)
    assert fake.stats["batch_files"] == 0 and fake.stats["batches"] == 0
    reasons = {r[0].split(":")[0] for r in sql(s, "SELECT deferred_reason FROM jobs")}
    assert reasons == {"budget_exhausted"}
    assert sql(s, "SELECT count(*) FROM embedding_batches")[0][0] == 0
    assert sql(s, "SELECT count(*) FROM ledger WHERE state = 'reserved'")[0][0] == 0


def test_the_batch_api_is_refused_where_there_is_none(settings: Settings, tmp_path: Path) -> None:
    """MOCK mode has no Batch API: asking for it is a clear refusal, and nothing is stored."""
    write_docs(tmp_path / "docs", 1)
    with pytest.raises(Refused, match="Batch API needs EMBEDDINGS_PROVIDER=openai"):
        submit(settings, tmp_path / "docs")
    result = run_cli(settings, "ingest", "--batch", str(tmp_path / "docs"))
    assert result.returncode == 1 and "Batch API needs" in result.stderr + result.stdout
    assert sql(settings, "SELECT count(*) FROM documents")[0][0] == 0


def test_ingest_batch_through_the_cli(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = batch_settings(settings, fake)
    write_docs(tmp_path / "docs", 3)
    env = worker_env(s)
    result = run_cli(s, "ingest", "--batch", str(tmp_path / "docs"), **env, EMBEDDING_BATCH_POLL_SECONDS="60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 documents wait for the OpenAI Batch API" in result.stdout
    assert fake.stats["batches"] == 1
    status = run_cli(s, "status", "--json", **env)
    assert '"awaiting_batch' in status.stdout
    assert KEY not in result.stdout + result.stderr + status.stdout
