"""Changing the embedding model is a backfill, never a silent empty index: search answers
from the tenant's active space until the configured model's space covers every current
document, then switches in one step; the old space's vectors go only when asked."""

from __future__ import annotations

import asyncio
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ingestflow.catalogue import openai_model
from ingestflow.config import Settings
from ingestflow.operations.errors import Refused
from ingestflow.services.costs import embedding_cost
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import real, stop, wait_for, worker_env, write_docs
from support import ingest, run_cli, sql, start_worker

SMALL, LARGE = "text-embedding-3-small", "text-embedding-3-large"


def call(s: Settings, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """An operation in a fresh runtime of these settings."""
    from ingestflow.runtime import open_runtime

    async def main() -> Any:
        async with open_runtime(s) as rt:
            return await fn(rt, *args, **kwargs)

    return asyncio.run(main())


def search(s: Settings, text: str, tenant: str = "default") -> Any:
    from ingestflow.operations.search import search as run

    return call(s, run, tenant, text, k=3)


def reembed(s: Settings, tenant: str = "default", *, batch_api: bool = False) -> list[uuid.UUID]:
    from ingestflow.operations.spaces import start_reembed

    return call(s, start_reembed, tenant, batch_api=batch_api)


def report(s: Settings, tenant: str = "default") -> Any:
    from ingestflow.operations.spaces import report as run

    return call(s, run, tenant)


def drain(s: Settings, ids: list[uuid.UUID]) -> None:
    async def main(rt: Any) -> None:
        await rt.drain(ids).run()

    call(s, main)


def vectors_by_model(s: Settings) -> dict[tuple[str, int], int]:
    return {(m, d): n for m, d, n in sql(s, "SELECT sp.model, sp.dimensions, count(*) FROM embeddings e"
                                            " JOIN embedding_spaces sp ON sp.id = e.space_id GROUP BY 1, 2")}


def test_a_model_change_in_mock_mode(settings: Settings, tmp_path: Path) -> None:
    """A different space (384 dimensions) stands in for a new model, offline."""
    write_docs(tmp_path / "docs", 4)
    ingest(settings, [tmp_path / "docs"])
    chunks = sql(settings, "SELECT count(*) FROM chunks")[0][0]
    new = settings.model_copy(update={"mock_embedding_dimensions": 384})
    result = search(new, "glaciers")
    assert result.hits and "covers 0 of 4 current documents" in result.notes[0]
    assert "ingestflow reembed" in result.notes[0]
    before = report(new)
    assert before.switching and before.estimate.chunks == chunks and before.estimate.sync_usd == 0
    drain(new, reembed(new))
    assert vectors_by_model(new) == {("mock-hashing-v2", 1536): chunks, ("mock-hashing-v2", 384): chunks}
    after = search(new, "glaciers")
    assert after.hits and after.notes == []
    assert not report(new).switching
    # the old space stays until asked for, and only an old space may go
    old_id = sql(new, "SELECT id FROM embedding_spaces WHERE dimensions = 1536")[0][0]
    new_id = sql(new, "SELECT id FROM embedding_spaces WHERE dimensions = 384")[0][0]
    from ingestflow.operations.spaces import drop_space

    with pytest.raises(Refused, match="only an old model's space"):
        call(new, drop_space, "default", new_id)
    assert call(new, drop_space, "default", old_id) == chunks
    assert vectors_by_model(new) == {("mock-hashing-v2", 384): chunks}


def test_new_documents_reach_both_spaces_during_a_change(settings: Settings, tmp_path: Path) -> None:
    write_docs(tmp_path / "first", 2)
    ingest(settings, [tmp_path / "first"])
    new = settings.model_copy(update={"mock_embedding_dimensions": 384})
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "late.md").write_text("A late note about auroras over the fjord.")
    ingest(new, [tmp_path / "second"])
    late = sql(new, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
                    " WHERE d.source_name = 'late.md'")[0][0]
    assert late == 1
    # searchable at once from the space search still uses, and already in the new one
    assert any("auroras" in h.text for h in search(new, "auroras over the fjord").hits)
    per_space = dict(sql(new, "SELECT sp.dimensions, count(*) FROM embeddings e JOIN chunks c ON c.id = e.chunk_id"
                              " JOIN documents d ON d.id = c.document_id JOIN embedding_spaces sp"
                              " ON sp.id = e.space_id WHERE d.source_name = 'late.md' GROUP BY 1"))
    assert per_space == {1536: 1, 384: 1}
    assert report(new).coverage.covered == 1  # the late one; the first two wait for reembed


def test_tenants_change_models_apart(settings: Settings, tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", 2)
    for tenant in ("acme", "globex"):
        from support import ingest as run_ingest

        run_ingest(settings, [tmp_path / "docs"], tenant=tenant)
    new = settings.model_copy(update={"mock_embedding_dimensions": 384})
    drain(new, reembed(new, "acme"))
    assert not report(new, "acme").switching and report(new, "globex").switching
    assert search(new, "glaciers", "acme").notes == []
    assert search(new, "glaciers", "globex").notes  # still on its old space, and told so


def test_switch_to_a_larger_model_without_an_empty_search(settings: Settings, fake: FakeOpenAI,
                                                          tmp_path: Path) -> None:
    """REAL: text-embedding-3-small, then OPENAI_EMBEDDING_MODEL=text-embedding-3-large. While
    a worker process re-embeds, searches run without pause: each answers from exactly one
    model, never empty, the old one until the switch and the new one after it."""
    small = real(settings, fake, claim_batch_size=3)
    write_docs(tmp_path / "docs", 12)
    ingest(small, [tmp_path / "docs"])
    chunks = sql(small, "SELECT count(*) FROM chunks")[0][0]
    tokens = sql(small, "SELECT sum(token_count) FROM chunks")[0][0]
    large = real(settings, fake, claim_batch_size=3, openai_embedding_model=LARGE)

    estimate = report(large).estimate
    spec = openai_model(LARGE)
    assert (estimate.chunks, estimate.tokens) == (chunks, tokens)
    assert estimate.sync_usd == embedding_cost(spec, tokens)
    assert estimate.batch_usd == embedding_cost(spec, tokens) / 2
    first = search(large, "volcanoes")
    assert first.model == SMALL and first.hits and "covers 0 of 12" in first.notes[0]

    answers: list[tuple[str, int]] = []
    done = threading.Event()

    def keep_searching() -> None:
        from ingestflow.operations.search import search as run
        from ingestflow.runtime import open_runtime

        async def main() -> None:
            async with open_runtime(large) as rt:
                while not done.is_set():
                    result = await run(rt, "default", "volcanoes", k=3)
                    answers.append((result.model, len(result.hits)))
                    await asyncio.sleep(0.02)

        asyncio.run(main())

    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    queued = reembed(large)
    assert len(queued) == 12
    w = start_worker(large, tmp_path / "w.log", **worker_env(large), OPENAI_EMBEDDING_MODEL=LARGE,
                     CLAIM_BATCH_SIZE="3")
    try:
        wait_for(lambda: not report(large).switching, 120, "the switch to the new model")
        wait_for(lambda: len(answers) > 0 and answers[-1][0] == LARGE, 30, "a search from the new model")
    finally:
        done.set()
        searcher.join(timeout=30)
        stop(w)
    assert answers and all(n == 3 for _, n in answers)  # never empty
    models = [m for m, _ in answers]
    switched = models.index(LARGE)
    assert set(models[:switched]) <= {SMALL} and set(models[switched:]) == {LARGE}  # one switch, no flapping
    assert vectors_by_model(large) == {(SMALL, 1536): chunks, (LARGE, 3072): chunks}
    assert sql(large, "SELECT state FROM jobs") == [("done",)] * 12
    # the re-embed was paid at the large model's price, once per chunk (the rest is searches)
    large_units = sql(large, "SELECT sum(sh.units) FROM ledger l JOIN ledger_shares sh ON sh.ledger_id = l.id"
                             " WHERE l.model = %s", (LARGE,))[0][0]
    assert large_units == tokens
    events = sql(large, "SELECT count(*) FROM events WHERE kind = 'reembedded'")[0][0]
    assert events == 12


def test_reembed_through_the_batch_api_at_half_price(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    small = real(settings, fake)
    write_docs(tmp_path / "docs", 4)
    ingest(small, [tmp_path / "docs"])
    tokens = sql(small, "SELECT sum(token_count) FROM chunks")[0][0]
    large = real(settings, fake, openai_embedding_model=LARGE, embedding_batch_poll_seconds=0.2)
    ids = reembed(large, batch_api=True)
    for _ in range(40):
        drain(large, ids)
        if not report(large).switching:
            break
        asyncio.run(asyncio.sleep(0.2))
    assert not report(large).switching
    assert fake.stats["batches"] == 1
    [(model, units, cost)] = sql(large, "SELECT model, units, cost_usd FROM ledger WHERE model LIKE %s",
                                 (f"{LARGE}%",))
    assert (model, units) == (f"{LARGE} (batch)", tokens)
    assert cost == embedding_cost(openai_model(LARGE), tokens) / 2
    assert search(large, "tides").model == LARGE


def test_reembed_through_the_cli(settings: Settings, tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", 2)
    ingest(settings, [tmp_path / "docs"])
    env = {"MOCK_EMBEDDING_DIMENSIONS": "384"}
    shown = run_cli(settings, "reembed", **env)
    assert shown.returncode == 0, shown.stderr
    assert "covers 0 of 2" not in shown.stdout and "0 of 2 current documents" in shown.stdout
    assert "--yes" in shown.stdout
    assert sql(settings, "SELECT count(*) FROM jobs WHERE task = 'reembed'")[0][0] == 0  # nothing started
    started = run_cli(settings, "reembed", "--yes", **env)
    assert started.returncode == 0, started.stderr
    assert "queued 2 documents" in started.stdout
    status = run_cli(settings, "status", **env)
    assert "search uses mock/mock-hashing-v2 (384d)" in status.stdout
    batch = run_cli(settings, "reembed", "--yes", "--batch", **env)
    assert batch.returncode == 1 and "Batch API needs" in batch.stdout + batch.stderr
    assert Decimal(0) == sql(settings, "SELECT coalesce(sum(cost_usd), 0) FROM ledger")[0][0]


def test_spaces_and_reembed_through_the_api(settings: Settings, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api_support import auth, make_key
    from ingestflow.api import create_app

    write_docs(tmp_path / "docs", 3)
    ingest(settings, [tmp_path / "docs"], tenant="acme")
    new = settings.model_copy(update={"mock_embedding_dimensions": 384})
    acme, globex = make_key(new, "acme"), make_key(new, "globex")
    with TestClient(create_app(new)) as client:
        view = client.get("/v1/spaces", headers=auth(acme)).json()
        assert view["switching"] and view["active"]["dimensions"] == 1536 and view["configured"]["dimensions"] == 384
        assert (view["covered"], view["current"]) == (0, 3) and view["missing_chunks"] > 0
        other = client.get("/v1/spaces", headers=auth(globex)).json()  # another tenant sees only its own
        assert other["active"] is None and other["current"] == 0 and not other["switching"]
        board = client.get("/v1/dashboard", headers=auth(acme)).json()["spaces"]
        assert board["switching"] and (board["covered"], board["current"]) == (0, 3)
        refused = client.post("/v1/reembed", headers=auth(acme), json={"batch": True})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "batch_api_unavailable"
        queued = client.post("/v1/reembed", headers=auth(acme), json={})
        assert queued.status_code == 202 and queued.json() == {"queued": 3}
        assert client.post("/v1/reembed", headers=auth(globex), json={}).json() == {"queued": 0}
    drain(new, [r[0] for r in sql(new, "SELECT id FROM documents")])
    with TestClient(create_app(new)) as client:
        view = client.get("/v1/spaces", headers=auth(acme)).json()
        assert not view["switching"] and view["active"]["dimensions"] == 384
        assert view["others"] == [{"id": view["others"][0]["id"], "provider": "mock", "model": "mock-hashing-v2",
                                   "dimensions": 1536}]
