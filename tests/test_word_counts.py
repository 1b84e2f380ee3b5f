"""Keyword search's per-tenant word counts (migrations/0024_word_counts.sql) stay exactly
what a recount from the chunks gives, through every way chunks become current or stop
being: ingest, re-upload (supersede), delete, a re-chunking reembed, a change of search
language, workers SIGKILLed mid-batch and several workers at once (real processes)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import psycopg

from ingestflow.config import Settings
from ingestflow.store import chunks
from ingestflow.store.database import migrate
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import KEY, real, stop, wait_for, worker_env, write_docs
from support import ingest, search, sql, start_worker, submit

WORDS = ("SELECT tenant, config, lexeme, sum(chunks) FROM tenant_words"
         " GROUP BY 1, 2, 3 HAVING sum(chunks) <> 0 ORDER BY 1, 2, 3")
RECOUNT = ("SELECT c.tenant, c.search_config, l.lexeme, count(*)"
           " FROM chunks c JOIN documents d ON d.id = c.document_id,"
           " unnest(tsvector_to_array(c.search_vector)) AS l(lexeme)"
           " WHERE d.is_current GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
TOTALS = "SELECT tenant, config, sum(chunks) FROM tenant_chunks GROUP BY 1, 2 HAVING sum(chunks) <> 0 ORDER BY 1, 2"
RETOTAL = ("SELECT c.tenant, c.search_config, count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
           " WHERE d.is_current GROUP BY 1, 2 ORDER BY 1, 2")


def assert_exact(s: Settings) -> list[tuple[Any, ...]]:
    """The kept counts equal a from-scratch recount of the current chunks; returns the totals."""
    assert sql(s, WORDS) == sql(s, RECOUNT)
    totals = sql(s, TOTALS)
    assert totals == sql(s, RETOTAL)
    return totals


def word_count(s: Settings, tenant: str, lexeme: str) -> int:
    return sql(s, "SELECT coalesce(sum(chunks), 0) FROM tenant_words WHERE tenant = %s AND lexeme = %s",
               (tenant, lexeme))[0][0]


def notes(folder: Path, n: int, word: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"note{i}.md").write_text(f"# Note {i}\n\nThe {word} survey found {i} puffins on the cliff.\n\n"
                                            f"## Weather\n\nFog kept the {word} boats in harbour for {i} days.")


def test_counts_stay_exact_through_ingest_supersede_delete_rechunk_and_language(settings: Settings,
                                                                                tmp_path: Path) -> None:
    from ingestflow.operations.documents import delete
    from ingestflow.operations.spaces import start_reembed
    from ingestflow.runtime import open_runtime

    def call(s: Settings, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def main() -> Any:
            async with open_runtime(s) as rt:
                return await fn(rt, *args, **kwargs)
        return asyncio.run(main())

    notes(tmp_path / "a", 4, "gannet")
    notes(tmp_path / "b", 3, "kittiwake")
    ingest(settings, [tmp_path / "a"])
    ingest(settings, [tmp_path / "b"], tenant="other")
    totals = assert_exact(settings)
    assert [(t, n) for t, _, n in totals] == [("default", 8), ("other", 6)]
    assert (word_count(settings, "default", "gannet"), word_count(settings, "other", "gannet")) == (8, 0)

    # Re-upload: the new versions' words come in, the superseded ones' go.
    for path in (tmp_path / "a").iterdir():
        path.write_text(path.read_text().replace("gannet", "fulmar"))
    ingest(settings, [tmp_path / "a"])
    assert_exact(settings)
    assert (word_count(settings, "default", "gannet"), word_count(settings, "default", "fulmar")) == (0, 8)
    assert search(settings, "fulmar puffins", mode="keyword")

    # Delete: every version of the source.
    doc = sql(settings, "SELECT id FROM documents WHERE is_current AND source_name = 'note0.md'"
                        " AND tenant = 'default'")[0][0]
    assert call(settings, delete, "default", doc) == 2
    assert_exact(settings)
    assert word_count(settings, "default", "fulmar") == 6

    # A re-chunking reembed: new versions, the old ones retired when they complete.
    rechunked = settings.model_copy(update={"chunk_max_tokens": 300, "chunk_overlap_tokens": 0})
    queued = call(rechunked, start_reembed, "default", batch_api=False)
    assert len(queued) == 3
    assert_exact(rechunked)  # queued, not current yet: the old chunks still count

    async def drain(rt: Any) -> None:
        await rt.drain(queued).run()

    call(rechunked, drain)
    assert_exact(rechunked)
    assert sql(rechunked, "SELECT DISTINCT version FROM documents WHERE is_current AND tenant = 'default'") == [(3,)]
    assert word_count(rechunked, "default", "fulmar") == 6

    # Another search language: the workers' rebuild moves the counts with the vectors.
    async def rebuild(rt: Any) -> int:
        async with rt.db.pool.connection() as conn, conn.transaction():
            return await chunks.rebuild_search_vectors(conn, "simple", limit=4)

    assert call(rechunked, rebuild) == 4  # a part only: two configurations at once
    assert len({config for _, config, _ in assert_exact(rechunked)}) == 2
    while call(rechunked, rebuild):
        pass
    assert {config for _, config, _ in assert_exact(rechunked)} == {"simple"}
    assert word_count(rechunked, "default", "fulmar") == 6


def test_a_repaired_current_version_is_counted_once(settings: Settings, tmp_path: Path) -> None:
    """A current version completing again (a degraded one, repaired) adds nothing; one
    chunked again from its first stage (a failed repair, retried) is counted out and in."""
    from ingestflow.store.chunks import NewChunk, replace
    from ingestflow.store.documents import make_current

    notes(tmp_path / "a", 2, "shearwater")
    ingest(settings, [tmp_path / "a"])
    before = assert_exact(settings)
    current = [row[0] for row in sql(settings, "SELECT id FROM documents WHERE is_current ORDER BY id")]
    replaced = sql(settings, "SELECT count(*) FROM chunks WHERE document_id = %s", (current[0],))[0][0]

    async def again() -> None:
        async with await psycopg.AsyncConnection.connect(settings.database_url.get_secret_value()) as conn:
            async with conn.transaction():
                await make_current(conn, current)
            async with conn.transaction():
                await replace(conn, {current[0]: [NewChunk(0, "One storm petrel, alone.", "One storm petrel, alone.",
                                                           5, {"heading_path": []})]}, search_config="english")

    asyncio.run(again())
    after = assert_exact(settings)
    assert after == [("default", "english", before[0][2] - replaced + 1)]
    assert word_count(settings, "default", "petrel") == 1


def test_the_migration_counts_what_exists(settings: Settings, tmp_path: Path) -> None:
    notes(tmp_path / "a", 3, "guillemot")
    ingest(settings, [tmp_path / "a"])
    ingest(settings, [tmp_path / "a"], tenant="other")
    kept = (sql(settings, WORDS), sql(settings, TOTALS))
    sql(settings, "DROP TABLE tenant_words, tenant_chunks; DROP FUNCTION count_chunk_words;"
                  " DELETE FROM schema_migrations WHERE version = 24")
    migrate(settings.database_url.get_secret_value())
    assert (sql(settings, WORDS), sql(settings, TOTALS)) == kept
    assert kept[0] == sql(settings, RECOUNT) and word_count(settings, "other", "guillemot") == 6


def test_counts_stay_exact_while_workers_race_versions_and_die(settings: Settings, tmp_path: Path) -> None:
    """Three real workers, three versions of each file uploaded while they run (each once
    some of the one before is current), a current source deleted mid-run, and a worker SIGKILLed every half second or so (mid-batch: calls to the
    provider are slow): the counts equal a recount once the queue drains."""
    from ingestflow.operations.documents import delete
    from ingestflow.runtime import open_runtime

    with FakeOpenAI(api_key=KEY, timeout_seconds=3, rpm=None, tpm=None) as fake:
        fake.faults.set_rate(1.0, ["slow:0.15"])
        s = real(settings, fake, daily_cost_limit_openai=None, hourly_rate_limit_openai=None, embedding_batch_size=2)
        folder = tmp_path / "docs"
        write_docs(folder, 12, sentences=8)
        submit(s, [folder])
        env = {**worker_env(s), "EMBEDDING_BATCH_SIZE": "2", "LEASE_SECONDS": "2"}

        def worker() -> Any:
            return start_worker(s, tmp_path / f"w{time.monotonic_ns()}.log", **env)

        procs = [worker() for _ in range(3)]
        rng = random.Random(28)
        kills = 0
        try:
            for version in (2, 3):
                # some of the previous version current first, so that this one retires them
                wait_for(lambda v=version: sql(s, "SELECT count(*) FROM documents WHERE is_current AND version = %s",
                                               (v - 1,))[0][0] >= 3, 60, f"version {version - 1} to be current")
                for path in sorted(folder.iterdir()):
                    path.write_text(path.read_text() + f"\n\nRevision {version} mentions a razorbill {path.stem}.")
                submit(s, [folder])
                for _ in range(3):
                    time.sleep(rng.uniform(0.2, 0.6))
                    victim = procs.pop(rng.randrange(len(procs)))
                    victim.kill()
                    victim.wait()
                    kills += 1
                    procs.append(worker())
            doomed = sql(s, "SELECT id FROM documents WHERE is_current ORDER BY source_name LIMIT 1")[0][0]

            async def remove() -> int:
                async with open_runtime(s) as rt:
                    return await delete(rt, "default", doomed)

            assert asyncio.run(remove()) == 3
            wait_for(lambda: sql(s, "SELECT count(*) FROM documents"
                                    " WHERE stage NOT IN ('complete', 'failed', 'superseded')")[0][0] == 0,
                     120, "every version to finish or be retired")
        finally:
            for p in procs:
                stop(p)
    assert kills == 6
    assert sql(s, "SELECT version, stage, count(*) FROM documents WHERE is_current GROUP BY 1, 2") == [
        (3, "complete", 11)]
    totals = assert_exact(s)
    assert totals == [("default", "english", sql(s, "SELECT count(*) FROM chunks")[0][0])]
    assert word_count(s, "default", "razorbil") == 11
