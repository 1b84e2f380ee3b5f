"""Bulk loads build the graph once (issue 30): while the queue fills a space faster than
an HNSW graph takes inserts, its index is held back (or dropped), search compares its
vectors exactly and says it is warming up, and the index is built once the load drains;
a trickle into an indexed space goes through its graph as before; during a model change
the old space serves search until the new one is loaded and indexed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingestflow.config import Settings
from ingestflow.store import jobs, vectors
from support import NEVER_BINARY

MIN_VECTORS = 20
DIMS, NEW_DIMS = 48, 40  # two mock models: a model change is a change of dimensions


@pytest.fixture
def s(settings: Settings) -> Settings:
    return settings.model_copy(update={"hnsw_min_vectors": MIN_VECTORS, "hnsw_binary_min_dimensions": NEVER_BINARY,
                                       "mock_embedding_dimensions": DIMS, "index_check_seconds": 0.1,
                                       "chunk_max_tokens": 64, "chunk_overlap_tokens": 0})


def docs(folder: Path, count: int, start: int = 0) -> list[Path]:
    """One-chunk documents, each about its own depot."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"depot{i:04}.md"
        path.write_text(f"# Depot {i}\n\nDepot {i} shipped crate number {i * 7} to harbour {i % 13}.\n")
        paths.append(path)
    return paths


def q(s: Settings, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    assert s.database_url is not None
    with psycopg.connect(s.database_url.get_secret_value(), autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def index_oid(s: Settings, space_id: int) -> int | None:
    rows = q(s, "SELECT c.oid::int FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
                " WHERE c.relname = %s AND i.indisvalid", (f"embeddings_hnsw_space_{space_id}",))
    return rows[0][0] if rows else None


def space_of(s: Settings, dimensions: int) -> int:
    return q(s, "SELECT id FROM embedding_spaces WHERE dimensions = %s", (dimensions,))[0][0]


def policy(s: Settings) -> vectors.IndexPolicy:
    return vectors.IndexPolicy.of(s)


def submit(s: Settings, paths: list[Path]) -> list[uuid.UUID]:
    from support import submit as run

    return [d.registration.document_id for d in run(s, paths) if d.registration]


def run(s: Settings, work: Any) -> Any:
    from ingestflow.runtime import open_runtime

    async def main() -> Any:
        async with open_runtime(s) as rt:
            return await work(rt)

    return asyncio.run(main())


def process(s: Settings, count: int) -> int:
    """Run ``count`` queued jobs through a worker's pipeline (one claim), leaving the rest
    queued: a load caught half-way. Returns how many ran."""
    async def work(rt: Any) -> int:
        worker = rt.worker(concurrency=1)
        owner = f"{worker.owner}/0"
        async with rt.db.pool.connection() as conn, conn.transaction():
            claimed = await jobs.claim(conn, owner, s.lease_seconds * 20, count, 1 << 40)
        await worker.process(claimed, owner)
        return len(claimed)

    return run(s, work)


def drain(s: Settings, ids: list[uuid.UUID]) -> None:
    async def work(rt: Any) -> None:
        await rt.drain(ids).run()

    run(s, work)


def maintain_until(s: Settings, done: Any) -> None:
    """A worker whose index maintenance runs every 0.1 s, stopped once ``done(conn)``."""
    async def work(rt: Any) -> None:
        worker = rt.worker(concurrency=1)

        async def stop() -> bool:
            async with rt.db.pool.connection() as conn:
                return await done(conn)

        worker.stop_when = stop
        await asyncio.wait_for(worker.run(), timeout=120)

    run(s, work)


def find(s: Settings, text: str) -> Any:
    from support import find as run_find

    return run_find(s, text, k=3, mode="vector")


def build(s: Settings, filling: int | None) -> list[int]:
    assert s.database_url is not None
    return asyncio.run(vectors.build_indexes(s.database_url.get_secret_value(), policy(s), filling))


WARMING = "warming up"


def test_the_decision_waits_for_the_queue_to_drain_and_drops_an_index_the_load_would_double() -> None:
    assert vectors.bulk_load(1_000, 5_000, MIN_VECTORS, indexed=False)  # still loading: no build
    assert not vectors.bulk_load(1_000, 10, MIN_VECTORS, indexed=False)  # drained (a trickle left): build
    assert not vectors.bulk_load(1_000_000, 9_000, 10_000, indexed=False)  # 1% of 1M left: build
    assert vectors.bulk_load(10_000, 990_000, 10_000, indexed=True)  # an index met too early: dropped
    assert not vectors.bulk_load(100_000, 50_000, 10_000, indexed=True)  # half as much again: kept
    assert not vectors.bulk_load(100_000, 5, 10_000, indexed=True)  # a trickle: through the graph


def test_an_initial_load_builds_its_index_once_and_searches_exactly_until_then(
        s: Settings, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    first = submit(s, docs(tmp_path / "a", 60))
    assert process(s, 30) == 30  # half the load stored; 30 documents still queued
    space = space_of(s, DIMS)
    assert build(s, space) == []  # 30 vectors, past HNSW_MIN_VECTORS, but 30 more queued: held back
    assert index_oid(s, space) is None
    assert q(s, "SELECT bulk_load_since IS NOT NULL FROM embedding_spaces WHERE id = %s", (space,)) == [(True,)]
    # Meanwhile search is exact over what is stored, and says it is warming up.
    result = find(s, "Depot 7 shipped crate number 49 to harbour 7.")
    assert result.hits[0].source_name == "depot0007.md"
    assert any(WARMING in n for n in result.notes)
    assert build(s, None) == [space]  # `ingestflow db index` builds now, whatever the queue
    assert index_oid(s, space) is not None and not any(WARMING in n for n in find(s, "Depot 7").notes)
    # A second load, larger than the space: the index is dropped rather than inserted into.
    second = submit(s, docs(tmp_path / "b", 90, start=60))
    assert build(s, space) == [] and index_oid(s, space) is None

    async def indexed(conn: psycopg.AsyncConnection) -> bool:
        return (await (await conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s",
                                          (f"embeddings_hnsw_space_{space}",))).fetchone())[0] == 1

    capfd.readouterr()
    drain(s, first + second)  # the worker's index maintenance runs every 0.1 s meanwhile
    maintain_until(s, indexed)  # and builds the index once the queue has drained, if it has not yet
    assert q(s, "SELECT count(*) FROM embeddings WHERE space_id = %s", (space,)) == [(150,)]
    builds = [line for line in capfd.readouterr().err.splitlines() if " index_built " in line]
    assert len(builds) == 1 and f"space_id={space} " in builds[0]  # once
    # ...over the bulk of the load: at most a trickle (fewer than HNSW_MIN_VECTORS) went through the graph.
    assert int(builds[0].split("vectors=")[1].split()[0]) > 150 - MIN_VECTORS
    assert q(s, "SELECT bulk_load_since FROM embedding_spaces WHERE id = %s", (space,)) == [(None,)]
    result = find(s, "Depot 140 shipped crate number 980 to harbour 10.")
    assert result.hits[0].source_name == "depot0140.md" and not any(WARMING in n for n in result.notes)


def test_a_trickle_into_an_indexed_space_goes_through_its_graph(s: Settings, tmp_path: Path) -> None:
    drain(s, submit(s, docs(tmp_path / "a", 40)))
    space = space_of(s, DIMS)
    build(s, space)  # the queue is empty: built now, unless the worker's maintenance already did
    before = index_oid(s, space)
    assert before is not None
    added = submit(s, docs(tmp_path / "b", 2, start=40))
    assert build(s, space) == [] and index_oid(s, space) == before  # 2 queued: no bulk load, index kept
    drain(s, added)
    assert index_oid(s, space) == before
    # The new vectors are in the graph: a search the planner can only answer from the index finds them.
    assert s.database_url is not None
    with psycopg.connect(s.database_url.get_secret_value()) as conn:
        conn.execute("SET enable_seqscan = off")
        from pgvector.psycopg import register_vector

        register_vector(conn)
        chunk, target = conn.execute(
            "SELECT e.chunk_id, e.embedding FROM embeddings e JOIN chunks c ON c.id = e.chunk_id"
            " JOIN documents d ON d.id = c.document_id WHERE d.source_name = 'depot0041.md' AND e.space_id = %s",
            (space,)).fetchone()
        sql = (f"SELECT chunk_id FROM embeddings_space_{space}"
               f" ORDER BY embedding::halfvec({DIMS}) <=> %s::halfvec({DIMS}) LIMIT 1")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, (target,)).fetchall())
        assert f"embeddings_hnsw_space_{space}" in plan and "Sort" not in plan
        assert conn.execute(sql, (target,)).fetchone()[0] == chunk


def test_the_old_space_serves_until_the_new_one_is_loaded_and_indexed(s: Settings, tmp_path: Path) -> None:
    from ingestflow.operations.spaces import start_reembed

    drain(s, submit(s, docs(tmp_path / "a", 60)))
    old = space_of(s, DIMS)
    build(s, old)
    old_index = index_oid(s, old)
    assert old_index is not None
    s2 = s.model_copy(update={"mock_embedding_dimensions": NEW_DIMS})
    queued = run(s2, lambda rt: start_reembed(rt, "default", batch_api=False))
    assert len(queued) == 60
    assert process(s2, 30) == 30
    new = space_of(s2, NEW_DIMS)
    assert build(s2, new) == []  # 30 of 60 re-embedded: the new space is loading
    assert index_oid(s2, new) is None and index_oid(s2, old) == old_index  # the old one is not touched
    result = find(s2, "Depot 7 shipped crate number 49 to harbour 7.")
    assert result.hits[0].source_name == "depot0007.md" and not any(WARMING in n for n in result.notes)
    assert any(f"({DIMS}d)" in n for n in result.notes)  # answered from the old space
    # Every document re-embedded (by a worker whose index maintenance does not run), but the
    # new space has no index yet: no switch.
    drain(s2.model_copy(update={"index_check_seconds": 10**6}), queued)
    assert q(s2, "SELECT space_id FROM active_spaces WHERE tenant = 'default'") == [(old,)]
    assert index_oid(s2, old) == old_index
    result = find(s2, "Depot 7 shipped crate number 49 to harbour 7.")
    assert result.hits[0].source_name == "depot0007.md" and "once a worker has built its index" in result.notes[0]

    async def switched(conn: psycopg.AsyncConnection) -> bool:
        row = await (await conn.execute("SELECT space_id FROM active_spaces WHERE tenant = 'default'")).fetchone()
        return row[0] == new

    maintain_until(s2, switched)  # the worker builds the new index, then switches
    assert index_oid(s2, new) is not None
    result = find(s2, "Depot 7 shipped crate number 49 to harbour 7.")
    assert result.hits[0].source_name == "depot0007.md" and result.notes == []
