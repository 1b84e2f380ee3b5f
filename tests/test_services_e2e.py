"""MOCK / REAL / HYBRID end to end: real worker processes, the real OpenAI client, and the
fake OpenAI server on loopback. Nothing fake is ever written into a real index."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ingestflow.config import ServiceMode, Settings
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import (
    KEY,
    bad_vectors,
    real,
    spaces,
    stages,
    stop,
    submit,
    wait_for,
    worker_env,
    write_docs,
)
from support import sql, start_worker


def test_real_mode_end_to_end_with_exact_ledger(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake)
    write_docs(tmp_path / "docs", 4)
    submit(s, tmp_path / "docs")
    w = start_worker(s, tmp_path / "w.log", **worker_env(s))
    try:
        wait_for(lambda: stages(s) == {"complete": 4}, 60, "REAL ingest")
    finally:
        stop(w)
    assert spaces(s) == {"openai": sql(s, "SELECT count(*) FROM chunks")[0][0]}
    assert bad_vectors(s) == 0
    units, calls = sql(s, "SELECT sum(units), count(*) FROM ledger WHERE state = 'settled'")[0]
    assert units == fake.stats["tokens_billed"] == sql(s, "SELECT sum(token_count) FROM chunks")[0][0]
    assert calls == fake.stats["requests"] == fake.stats["status_200"]
    from support import search

    hits = search(s, "honey bees and their behaviour", k=1)
    assert "honey bees" in hits[0].text


def test_invalid_responses_are_never_stored(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake, embedding_batch_size=4)
    write_docs(tmp_path / "docs", 3)
    submit(s, tmp_path / "docs")
    fake.faults.inject("nan", "wrong_dimensions", "fewer_vectors", "malformed_json", "nan")
    w = start_worker(s, tmp_path / "w.log", **worker_env(s), EMBEDDING_BATCH_SIZE="4")
    try:
        wait_for(lambda: stages(s) == {"complete": 3}, 60, "completion despite invalid responses")
    finally:
        stop(w)
    assert bad_vectors(s) == 0
    assert sql(s, "SELECT count(*) FROM chunks c LEFT JOIN embeddings e ON e.chunk_id = c.id"
                  " WHERE e.chunk_id IS NULL")[0][0] == 0
    # invalid responses were billed by the provider, and the ledger says so, exactly
    assert sql(s, "SELECT sum(units) FROM ledger WHERE state = 'settled'")[0][0] == fake.stats["tokens_billed"]
    assert sql(s, "SELECT count(*) FROM ledger WHERE outcome = 'invalid_response'")[0][0] == 5


def test_real_mode_with_provider_down_waits_instead_of_failing_or_faking(
        settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake)
    write_docs(tmp_path / "docs", 2)
    submit(s, tmp_path / "docs")
    fake.faults.down = True
    w = start_worker(s, tmp_path / "w.log", **worker_env(s))
    try:
        wait_for(lambda: sql(s, "SELECT count(*) FROM jobs WHERE deferred_reason IS NOT NULL")[0][0] == 2,
                 60, "jobs to be deferred")
        assert "failed" not in stages(s)
        assert spaces(s).get("mock", 0) == 0 and spaces(s).get("openai", 0) == 0  # nothing faked
        assert sql(s, "SELECT count(*) FROM breakers WHERE service = 'openai' AND state <> 'closed'")[0][0] == 1
        fake.faults.down = False
        wait_for(lambda: stages(s) == {"complete": 2}, 60, "completion after the provider returns")
    finally:
        stop(w)
    assert sql(s, "SELECT state FROM breakers")[0][0] == "closed"
    assert "mock" not in spaces(s)


def test_hybrid_falls_back_degraded_then_repairs(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake, ServiceMode.HYBRID)
    write_docs(tmp_path / "docs", 3)
    submit(s, tmp_path / "docs")
    fake.faults.down = True
    w = start_worker(s, tmp_path / "w.log", **worker_env(s))
    try:
        wait_for(lambda: stages(s) == {"complete": 3}, 60, "degraded completion")
        assert sql(s, "SELECT count(*) FROM documents WHERE degraded")[0][0] == 3
        assert spaces(s).get("mock", 0) > 0
        events = sql(s, "SELECT count(*) FROM events WHERE kind = 'fallback'")[0][0]
        assert events == 3
        fake.faults.down = False
        wait_for(lambda: sql(s, "SELECT count(*) FROM documents WHERE degraded")[0][0] == 0, 60, "repair")
        wait_for(lambda: stages(s) == {"complete": 3}, 30, "repaired documents complete")
    finally:
        stop(w)
    chunks = sql(s, "SELECT count(*) FROM chunks")[0][0]
    assert spaces(s) == {"openai": chunks, "mock": 0}  # no mock vector remains
    assert sql(s, "SELECT count(*) FROM events WHERE kind = 'repair_scheduled'")[0][0] == 3


def test_hybrid_search_uses_the_fallback_space_when_real_is_down(
        settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    from support import ingest

    fake.faults.down = True
    s = real(settings, fake, ServiceMode.HYBRID, call_retry_attempts=1, breaker_failure_threshold=100)
    write_docs(tmp_path / "docs", 3)
    ingest(s, [tmp_path / "docs"])  # degraded: vectors in the fallback (mock) space only
    assert sql(s, "SELECT count(*) FROM documents WHERE degraded")[0][0] == 3
    assert spaces(s) == {"openai": 0, "mock": sql(s, "SELECT count(*) FROM chunks")[0][0]}
    from ingestflow.operations.search import search as run_search
    from ingestflow.runtime import open_runtime

    async def main() -> object:
        async with open_runtime(s) as rt:
            return await run_search(rt, "default", "honey bees behaviour", k=1)

    result = asyncio.run(main())  # the query cannot be embedded by OpenAI: the fallback's space answers
    assert result.degraded and result.provider == "mock" and "honey bees" in result.hits[0].text
    assert "searched the fallback index" in result.notes[0]


def test_secrets_never_leak(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake)
    write_docs(tmp_path / "docs", 1)
    outputs = []
    env = {**worker_env(s)}
    from support import run_cli

    outputs.append(run_cli(s, "doctor", **env))
    outputs.append(run_cli(s, "ingest", str(tmp_path / "docs"), **env))
    # a provider that rejects the key: the failure text must not carry it either
    bad_key = "sk-REJECTED-secret-5e4d3c2b1a"
    outputs.append(run_cli(s, "search", "bees", **{**env, "OPENAI_API_KEY": bad_key}))
    # a worker whose key is rejected: its log and the failed document must not carry it
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "new.md").write_text("# New\n\nA document the rejected key cannot embed.")
    submit(s, tmp_path / "more")
    worker = start_worker(s, tmp_path / "w.log", **{**env, "OPENAI_API_KEY": bad_key})
    try:
        wait_for(lambda: stages(s).get("failed") == 1, 60, "the auth failure")
    finally:
        stop(worker)
    assert sql(s, "SELECT error_code FROM documents WHERE stage = 'failed'")[0][0] == "auth_failed"
    text = "\n".join(r.stdout + r.stderr for r in outputs) + (tmp_path / "w.log").read_text()
    assert "**********" in outputs[0].stdout  # doctor shows the key masked
    rows = sql(s, "SELECT coalesce(error_message, '') FROM documents UNION ALL SELECT detail::text FROM events"
                  " UNION ALL SELECT coalesce(last_error, '') FROM jobs")
    text += "\n".join(r[0] for r in rows)
    assert KEY not in text and bad_key not in text
    assert "OPENAI_API_KEY" not in text or "***" in text


def test_a_text_shared_by_many_documents_is_paid_once(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    """A boilerplate section repeated across a batch is sent once; each chunk gets its vector.
    (An input begins with its document's title: the letters share theirs, so their footers
    are one input; under twenty titles they would be twenty. One slot, so one batch: two
    slots each take a fair share of the queue, and two batches running at once may each
    send the text before either has stored it.)"""
    from support import ingest

    folder = tmp_path / "letters"
    folder.mkdir()
    footer = "# Legal\n\nThis letter is confidential and meant for its addressee only."
    for i in range(20):
        (folder / f"letter{i:02}.md").write_text(f"# Letter\n\nYour parcel {i} left depot {i * 7}.\n\n{footer}")
    s = real(settings, fake)
    ingest(s, [folder], concurrency=1)
    chunks, distinct = sql(s, "SELECT count(*), count(DISTINCT text) FROM chunks")[0]
    assert chunks == 40 and distinct == 21
    assert fake.stats["inputs"] == distinct and bad_vectors(s) == 0
    assert sql(s, "SELECT count(*) FROM embeddings")[0][0] == chunks
    distinct_tokens = sql(s, "SELECT sum(t) FROM (SELECT DISTINCT text, token_count AS t FROM chunks) d")[0][0]
    assert sql(s, "SELECT sum(units) FROM ledger")[0][0] == fake.stats["tokens_billed"] == distinct_tokens
