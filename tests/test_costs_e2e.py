"""Cost control under load: worker processes race for budgets and rate limits against the
fake OpenAI server, with faults and outages; the ledger matches the provider to the token."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ingestflow.config import Settings
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import (
    bad_vectors,
    real,
    stages,
    stop,
    submit,
    wait_for,
    worker_env,
    write_docs,
)
from support import sql, start_worker


def one_request_per_doc(settings: Settings, fake: FakeOpenAI, **extra: object) -> Settings:
    """One chunk per document, one input per request, one job per claim: workers race
    request by request."""
    return real(settings, fake, chunk_max_tokens=2000, embedding_batch_size=1, claim_batch_size=1, **extra)


ONE_BY_ONE = {"CLAIM_BATCH_SIZE": "1"}  # EMBEDDING_BATCH_SIZE follows the settings


def docs_with_equal_cost(folder: Path, n: int) -> int:
    """n one-chunk documents whose inputs (the title, the file name here, then the text)
    have identical token counts; returns that count."""
    from ingestflow.pipeline.chunking import ChunkingConfig, chunk_markdown
    from ingestflow.tokens import count_tokens

    folder.mkdir()
    texts = [f"Report {chr(65 + i % 26)}{chr(65 + i // 26)} covers harbour traffic and weather." for i in range(n)]
    counts = set()
    for i, text in enumerate(texts):
        (folder / f"r{i:02}.txt").write_text(text)
        (chunk,) = chunk_markdown(text, config=ChunkingConfig(2000, 64), title=f"r{i:02}")
        assert chunk.context == f"r{i:02}" and chunk.token_count > count_tokens(text)
        counts.add(chunk.token_count)
    assert len(counts) == 1
    return counts.pop()


def test_four_workers_racing_spend_exactly_within_the_limit(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    tokens = docs_with_equal_cost(tmp_path / "docs", 16)
    per_request = Decimal("0.02") * tokens / 1_000_000
    limit = per_request * Decimal("10.5")  # room for exactly 10 requests
    s = one_request_per_doc(settings, fake, daily_cost_limit_openai=float(limit))
    submit(s, tmp_path / "docs")
    workers = [start_worker(s, tmp_path / f"w{i}.log", **worker_env(s), **ONE_BY_ONE) for i in range(4)]
    try:
        wait_for(lambda: stages(s).get("complete") == 10 and
                 sql(s, "SELECT count(*) FROM jobs WHERE deferred_reason LIKE 'budget_exhausted%%'")[0][0] == 6,
                 90, "10 complete and 6 deferred on budget")
    finally:
        for w in workers:
            stop(w)
    spent, calls = sql(s, "SELECT sum(cost_usd), count(*) FROM ledger WHERE state = 'settled'")[0]
    assert calls == 10 == fake.stats["requests"]
    assert spent == per_request * 10 <= limit
    assert "failed" not in stages(s)


def test_hourly_request_limit_holds_across_processes(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    docs_with_equal_cost(tmp_path / "docs", 12)
    s = one_request_per_doc(settings, fake, hourly_rate_limit_openai=5)
    submit(s, tmp_path / "docs")
    workers = [start_worker(s, tmp_path / f"w{i}.log", **worker_env(s), **ONE_BY_ONE) for i in range(3)]
    try:
        wait_for(lambda: stages(s).get("complete") == 5 and
                 sql(s, "SELECT count(*) FROM jobs WHERE deferred_reason IS NOT NULL")[0][0] == 7,
                 90, "5 complete, 7 deferred")
    finally:
        for w in workers:
            stop(w)
    assert fake.stats["requests"] == 5
    reasons = {r[0] for r in sql(s, "SELECT deferred_reason FROM jobs WHERE deferred_reason IS NOT NULL")}
    assert all("hourly request limit 5" in r for r in reasons)
    # deferred work is visible: the jobs wait for the next hour, not failed
    wait = sql(s, "SELECT min(extract(epoch FROM next_attempt_at - now())) FROM jobs WHERE state = 'ready'")[0][0]
    assert 0 < wait <= 3601


def test_thirty_percent_mixed_faults_still_complete_with_valid_vectors(
        settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake, embedding_batch_size=3, call_retry_attempts=6, breaker_failure_threshold=50)
    write_docs(tmp_path / "docs", 8)
    submit(s, tmp_path / "docs")
    fake.faults.set_rate(0.3, ["429", "500", "timeout", "malformed_json", "nan", "drop", "fewer_vectors"], seed=7)
    env = {**worker_env(s), "EMBEDDING_BATCH_SIZE": "3", "CALL_RETRY_ATTEMPTS": "6",
           "BREAKER_FAILURE_THRESHOLD": "50"}
    workers = [start_worker(s, tmp_path / f"w{i}.log", **env) for i in range(2)]
    try:
        wait_for(lambda: stages(s) == {"complete": 8}, 180, "all documents despite faults")
    finally:
        for w in workers:
            stop(w)
    assert bad_vectors(s) == 0
    assert sql(s, "SELECT count(*) FROM chunks c LEFT JOIN embeddings e ON e.chunk_id = c.id"
                  " WHERE e.chunk_id IS NULL")[0][0] == 0
    faults = sum(v for k, v in fake.stats.items() if k.startswith("status_") and k != "status_200")
    assert faults > 0
    # exact accounting: what the provider billed is what the ledger says, token for token
    assert sql(s, "SELECT sum(units) FROM ledger WHERE state = 'settled'")[0][0] == fake.stats["tokens_billed"]


def test_outage_opens_the_breaker_defers_and_recovers(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake, breaker_failure_threshold=3, breaker_cooldown_seconds=1.0)
    write_docs(tmp_path / "docs", 5)
    submit(s, tmp_path / "docs")
    fake.faults.down = True
    env = {**worker_env(s), "BREAKER_FAILURE_THRESHOLD": "3"}
    workers = [start_worker(s, tmp_path / f"w{i}.log", **env) for i in range(2)]
    try:
        wait_for(lambda: sql(s, "SELECT count(*) FROM breakers WHERE state = 'open'")[0][0] == 1, 60, "breaker open")
        wait_for(lambda: sql(s, "SELECT count(*) FROM jobs WHERE deferred_reason IS NOT NULL")[0][0] == 5,
                 60, "all jobs deferred")
        during = fake.stats["requests"]
        assert "failed" not in stages(s)
        fake.faults.down = False
        wait_for(lambda: stages(s) == {"complete": 5}, 90, "recovery")
    finally:
        for w in workers:
            stop(w)
    assert sql(s, "SELECT state FROM breakers")[0][0] == "closed"
    assert during < 60  # the breaker stopped the hammering: a few probes, not a retry storm
    kinds = {r[0] for r in sql(s, "SELECT detail->>'code' FROM events WHERE kind = 'deferred'")}
    assert kinds & {"breaker_open", "provider_unavailable"}


def test_budget_exhausted_mid_document_resumes_without_paying_twice(
        settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "long.md").write_text("\n\n".join(
        f"Section {i} describes the harbour, its ships, cranes and the tide tables." for i in range(5)))
    s = real(settings, fake, chunk_max_tokens=20, embedding_batch_size=1)
    (sub,) = submit(s, folder)
    # size the limit from the chunks the worker will make: room for 3 of the 5 requests
    from ingestflow.pipeline.chunking import ChunkingConfig, chunk_markdown

    chunks = chunk_markdown((folder / "long.md").read_text(), config=ChunkingConfig(20, 0))
    tokens = [c.token_count for c in chunks]
    assert len(tokens) == 5 and len(set(tokens)) == 1
    per_request = Decimal("0.02") * tokens[0] / 1_000_000
    s = s.model_copy(update={"daily_cost_limit_openai": float(per_request * Decimal("3.5"))})
    env = {**worker_env(s), "EMBEDDING_BATCH_SIZE": "1", "CHUNK_MAX_TOKENS": "20", "CHUNK_OVERLAP_TOKENS": "0"}
    w = start_worker(s, tmp_path / "w.log", **env)
    try:
        wait_for(lambda: (sql(s, "SELECT deferred_reason FROM jobs")[0][0] or "").startswith("budget_exhausted"),
                 60, "deferral mid-document")
        assert sql(s, "SELECT stage FROM documents")[0][0] == "embedding"
        assert sql(s, "SELECT count(*) FROM embeddings")[0][0] == 3
        # the next window: yesterday's spend no longer counts, and the job is due
        sql(s, "UPDATE spend_counters SET window_start = window_start - interval '1 day'")
        sql(s, "UPDATE jobs SET next_attempt_at = now()")
        sql(s, "NOTIFY ingestflow_jobs")
        wait_for(lambda: stages(s) == {"complete": 1}, 60, "completion in the next window")
    finally:
        stop(w)
    assert fake.stats["requests"] == 5  # three before the limit, two after: none repeated
    assert sql(s, "SELECT count(*), sum(units) FROM ledger WHERE state = 'settled'")[0] == (5, sum(tokens))
    assert fake.stats["tokens_billed"] == sum(tokens)
    assert sub.registration.document_id


def test_versions_superseded_while_queued_cost_nothing(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    """Three versions of 8 sources queued together, then one worker claims them all in one
    batch: the two older versions of each source end superseded before any paid call, and
    the provider bills the newest versions' tokens only. Before, every version was
    embedded and then retired (most of the spend wasted)."""
    import asyncio

    from ingestflow.runtime import open_runtime

    s = real(settings, fake, daily_cost_limit_openai=None, hourly_rate_limit_openai=None)
    folder = tmp_path / "docs"
    write_docs(folder, 8, sentences=12)
    submit(s, folder)
    for version in (2, 3):
        for path in sorted(folder.iterdir()):
            path.write_text(path.read_text() + f"\n\nRevision {version} of {path.stem} adds a closing sentence.")
        submit(s, folder)
    ids = [row[0] for row in sql(s, "SELECT id FROM documents")]

    async def drain() -> None:  # one slot: every version of every source in one claimed batch
        async with open_runtime(s) as rt:
            await rt.drain(ids, 1).run()

    asyncio.run(drain())
    assert sql(s, "SELECT version, stage, count(*) FROM documents GROUP BY 1, 2 ORDER BY 1") == [
        (1, "superseded", 8), (2, "superseded", 8), (3, "complete", 8)]
    assert sql(s, "SELECT count(DISTINCT detail->>'owner') FROM events WHERE kind = 'claimed'") == [(1,)]
    paid_versions = sql(s, "SELECT DISTINCT d.version FROM ledger l JOIN ledger_shares sh ON sh.ledger_id = l.id"
                           " JOIN documents d ON d.id = sh.document_id")
    assert paid_versions == [(3,)]
    newest_tokens = sql(s, "SELECT sum(c.token_count) FROM chunks c JOIN documents d ON d.id = c.document_id"
                           " WHERE d.version = 3")[0][0]
    assert 0 < fake.stats["tokens_billed"] <= newest_tokens
