"""Backfills: a model switch under search load, the OpenAI Batch API (issue 9), and a
bulk load whose index is built once (issue 30).

    .venv/bin/python bench/backfill.py [--switch-chunks 10000] [--batch-chunks 50000]
    .venv/bin/python bench/backfill.py --switch-chunks 0 --batch-chunks 0 --bulk-chunks 100000 [--dims 128]

Both run REAL mode against the fake OpenAI on loopback (no latency), on a fresh database
of the embedded server, with an in-process worker:

1. Model switch: a corpus of N one-chunk documents embedded with text-embedding-3-small;
   then OPENAI_EMBEDDING_MODEL=text-embedding-3-large and `reembed`, while another
   thread searches without pause. Prints the estimate, the wall time to the switch, and
   every search's answer: how many, from which model, how many empty (the goal: none),
   and whether the model changed exactly once.
2. Batch API backfill: the same switch for a corpus of M chunks, through the Batch API:
   files uploaded, batches and lines (requests) used, the ledger's dollars against the
   synchronous price of the same tokens (the goal: exactly half), chunks embedded twice.
3. Bulk load (``run(n)``, also called by bench/scale.py): n chunks (documents of 10) queued
   at once on a fresh database, MOCK embedder at ``dims`` dimensions, one in-process
   worker with its index maintenance every INDEX_CHECK_SECONDS=5: the time from queued
   to searchable with the space's HNSW index built, against, on another fresh database
   in the same run, the same load with no index maintenance plus one build afterwards
   (the least that loading and indexing can cost), and the ratio. Then a trickle into
   the indexed space: groups of 10 one-chunk documents, each drained before the next, with
   the index maintenance running every 0.2 s (this code: a trickle is no bulk load) and
   off (what workers did before), alternating: vectors/s, median of the groups.
Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr

from ingestflow.catalogue import openai_model
from ingestflow.config import ServiceMode, Settings
from ingestflow.operations import spaces
from ingestflow.operations.documents import submit_paths
from ingestflow.operations.search import search
from ingestflow.runtime import Runtime, open_runtime
from ingestflow.services.costs import embedding_cost
from ingestflow.store import jobs, vectors
from ingestflow.testing.fake_openai import FakeOpenAI
from support import fresh_database, small_docs, temporary_home

KEY = "sk-bench-backfill"
SMALL, LARGE = "text-embedding-3-small", "text-embedding-3-large"


def corpus(folder: Path, documents: int, paragraphs: int) -> None:
    """Documents of ``paragraphs`` chunks each (one heading per chunk)."""
    folder.mkdir(parents=True)
    for i in range(documents):
        (folder / f"doc{i:05}.md").write_text("\n\n".join(
            f"# Section {p}\n\nRecord {i}.{p}: the shipment to depot {(i * 31 + p) % 97} was inspected "
            f"on day {(i + p) % 28 + 1} and its {('seal', 'label', 'crate', 'manifest')[p % 4]} was fine."
            for p in range(paragraphs)))


def settings_for(base: Settings, fake: FakeOpenAI, model: str, url: str) -> Settings:
    return base.model_copy(update={
        "database_url": SecretStr(url), "service_mode": ServiceMode.REAL, "openai_api_key": SecretStr(KEY),
        "openai_api_url": fake.url, "openai_embedding_model": model, "daily_cost_limit_openai": None,
        "hourly_rate_limit_openai": None, "chunk_max_tokens": 64, "chunk_overlap_tokens": 0,
        "embedding_batch_poll_seconds": 0.5})


async def ingest(s: Settings, folder: Path) -> int:
    async with open_runtime(s) as rt:
        done = await submit_paths(rt, [folder], "default")
        ids = [d.registration.document_id for d in done if d.registration]
        await rt.drain(ids).run()
        async with rt.db.pool.connection() as conn:
            return (await (await conn.execute("SELECT count(*) FROM chunks")).fetchone())[0]


async def reembed(s: Settings, *, batch_api: bool) -> tuple[spaces.Estimate, float]:
    """Queue the switch and work until it happens; (the estimate, seconds to the switch)."""
    async with open_runtime(s) as rt:
        estimate = (await spaces.report(rt, "default")).estimate
        started = time.perf_counter()
        ids = await spaces.start_reembed(rt, "default", batch_api=batch_api)
        while (await spaces.report(rt, "default")).switching:
            await rt.drain(ids).run()
            await asyncio.sleep(0.2)
        return estimate, time.perf_counter() - started


def model_switch(base: Settings, fake: FakeOpenAI, work: Path, chunks: int) -> None:
    url = fresh_database(base)
    corpus(work / "switch", chunks, 1)
    made = asyncio.run(ingest(settings_for(base, fake, SMALL, url), work / "switch"))
    large = settings_for(base, fake, LARGE, url)
    answers: list[tuple[str, int]] = []
    stop = threading.Event()

    def searching() -> None:
        async def loop() -> None:
            async with open_runtime(large) as rt:
                while not stop.is_set():
                    result = await search(rt, "default", "shipment to depot 42 was inspected", k=5)
                    answers.append((result.model, len(result.hits)))

        asyncio.run(loop())

    searcher = threading.Thread(target=searching)
    searcher.start()
    try:
        estimate, seconds = asyncio.run(reembed(large, batch_api=False))
        time.sleep(0.5)  # a few searches after the switch
    finally:
        stop.set()
        searcher.join()
    models = [m for m, _ in answers]
    changes = sum(1 for a, b in zip(models, models[1:], strict=False) if a != b)
    print(f"model switch, {made} chunks: estimate {estimate.tokens} tokens, ${float(estimate.sync_usd):.4f} sync, "
          f"${float(estimate.batch_usd or 0):.4f} batch; switched after {seconds:.2f} s")
    print(f"  searches during the switch: {len(answers)}  empty: {sum(n == 0 for _, n in answers)}  "
          f"from {SMALL}: {models.count(SMALL)}  from {LARGE}: {models.count(LARGE)}  model changes: {changes}")


def batch_backfill(base: Settings, fake: FakeOpenAI, work: Path, chunks: int) -> None:
    url = fresh_database(base)
    corpus(work / "batch", chunks // 10, 10)
    made = asyncio.run(ingest(settings_for(base, fake, SMALL, url), work / "batch"))
    before = dict(fake.stats)
    large = settings_for(base, fake, LARGE, url)
    estimate, seconds = asyncio.run(reembed(large, batch_api=True))
    with psycopg.connect(url) as conn:
        units, cost = conn.execute("SELECT sum(units), sum(cost_usd) FROM ledger WHERE model = %s",
                                   (f"{LARGE} (batch)",)).fetchone()
        twice = conn.execute("SELECT count(*) FROM (SELECT chunk_id FROM embedding_batch_chunks"
                             " WHERE outcome = 'embedded' GROUP BY chunk_id HAVING count(*) > 1) x").fetchone()[0]
    sync = embedding_cost(openai_model(LARGE), int(units))
    used = {k: fake.stats[k] - before.get(k, 0) for k in ("batch_files", "batches", "batch_lines", "requests")}
    print(f"Batch API backfill, {made} chunks in {seconds:.1f} s: {used['batch_files']} files, "
          f"{used['batches']} batches, {used['batch_lines']} lines (requests), {used['requests']} synchronous requests")
    print(f"  ledger ${Decimal(cost):.6f} for {units} tokens; synchronous price ${sync:.6f}; "
          f"ratio {Decimal(cost) / sync:.4f}; chunks embedded twice: {twice}; "
          f"estimate said ${float(estimate.batch_usd or 0):.6f}")


BULK_PARAGRAPHS = 10  # chunks per document of the bulk load
TRICKLE_GROUPS, TRICKLE_DOCUMENTS = 10, 10


def bulk_settings(base: Settings, url: str, dims: int, **update: Any) -> Settings:
    return base.model_copy(update={
        "database_url": SecretStr(url), "service_mode": ServiceMode.MOCK, "mock_embedding_dimensions": dims,
        "chunk_max_tokens": 64, "chunk_overlap_tokens": 0, "index_check_seconds": 5.0, **update})


async def queue(rt: Runtime, folder: Path) -> list[uuid.UUID]:
    done = await submit_paths(rt, [folder], "default")
    return [d.registration.document_id for d in done if d.registration]


async def space_index(rt: Runtime, dims: int) -> int | None:
    """The oid of the valid HNSW index of the space of these dimensions, if it has one (a
    rebuild is a new oid)."""
    async with rt.db.pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT c.oid::int FROM embedding_spaces s JOIN pg_class c ON c.relname = 'embeddings_hnsw_space_' || s.id"
            " JOIN pg_index i ON i.indexrelid = c.oid AND i.indisvalid WHERE s.dimensions = %s", (dims,))).fetchone()
    return row[0] if row else None


async def bulk_load(s: Settings, folder: Path) -> tuple[float, int, int, float | None]:
    """Queue the corpus and work until it is searchable with its index built: (seconds,
    chunks, index builds seen, seconds at which the queue had drained). The index is
    looked for every half second meanwhile: each build ends as a new index."""
    async with open_runtime(s) as rt:
        ids = await queue(rt, folder)
        worker = rt.worker()
        seen: set[int] = set()
        drained: list[float] = []
        started = time.perf_counter()

        async def watch() -> None:
            while True:
                if (oid := await space_index(rt, s.mock_embedding_dimensions)) is not None:
                    seen.add(oid)
                await asyncio.sleep(0.5)

        async def searchable() -> bool:
            async with rt.db.pool.connection() as conn:
                if await jobs.pending(conn, ids):
                    return False
            drained[:] = drained or [time.perf_counter() - started]
            oid = await space_index(rt, s.mock_embedding_dimensions)
            if oid is not None:
                seen.add(oid)
            return oid is not None

        worker.stop_when = searchable
        watcher = asyncio.create_task(watch())
        try:
            await worker.run()
        finally:
            watcher.cancel()
        seconds = time.perf_counter() - started
        async with rt.db.pool.connection() as conn:
            chunks = (await (await conn.execute("SELECT count(*) FROM embeddings")).fetchone())[0]
        return seconds, chunks, len(seen), drained[0] if drained else None


async def load_then_build(s: Settings, folder: Path) -> tuple[float, float]:
    """The same load with no index maintenance, then one build: (load seconds, build seconds)."""
    async with open_runtime(s) as rt:
        ids = await queue(rt, folder)
        started = time.perf_counter()
        await rt.drain(ids).run()
        loaded = time.perf_counter() - started
        policy = vectors.IndexPolicy.of(rt.settings, 1)
        assert s.database_url is not None
        built = await vectors.build_indexes(s.database_url.get_secret_value(), policy)
        assert len(built) == 1
        return loaded, time.perf_counter() - started - loaded


async def trickle(s: Settings, folder: Path, first: int, documents: int) -> float:
    """Vectors/s of one drained group of one-chunk documents."""
    async with open_runtime(s) as rt:
        before = await space_index(rt, s.mock_embedding_dimensions)
        small_docs(folder, documents, first=first)
        ids = await queue(rt, folder)
        started = time.perf_counter()
        await rt.drain(ids).run()
        seconds = time.perf_counter() - started
        assert await space_index(rt, s.mock_embedding_dimensions) == before  # inserted through the same graph: not dropped, not rebuilt
        return documents / seconds


def run(n: int, *, dims: int = 128, base: Settings | None = None) -> list[str]:
    """The bulk-load figures for n chunks (see the module docstring); returns the lines printed."""
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with temporary_home() as tmp:
        work = Path(tmp)
        base = base or Settings(ingestflow_home=work / "home", log_level="WARNING")
        corpus(work / "bulk", max(1, n // BULK_PARAGRAPHS), BULK_PARAGRAPHS)
        plain = bulk_settings(base, fresh_database(base), dims, index_check_seconds=10**6)  # no maintenance
        loaded, build = asyncio.run(load_then_build(plain, work / "bulk"))
        # A space below HNSW_MIN_VECTORS needs no index: small runs lower it so one is built.
        ours = bulk_settings(base, fresh_database(base), dims,
                             hnsw_min_vectors=min(base.hnsw_min_vectors, max(1, n // 10)))
        seconds, chunks, builds, drained = asyncio.run(bulk_load(ours, work / "bulk"))
        say(f"bulk load, {chunks:,} chunks ({dims}-d MOCK vectors, HNSW_MIN_VECTORS {ours.hnsw_min_vectors:,}, "
            f"m {ours.hnsw_m}, ef_construction {ours.hnsw_ef_construction}):")
        say(f"  queued to searchable with its index built: {seconds:.1f} s (queue drained at "
            f"{drained or 0:.1f} s; index builds seen: {builds})")
        say(f"  load without an index {loaded:.1f} s + one build {build:.1f} s = {loaded + build:.1f} s; "
            f"ratio {seconds / (loaded + build):.2f}x (target <= 1.3x)")
        rates: dict[bool, list[float]] = {True: [], False: []}
        for group in range(TRICKLE_GROUPS):
            for on in (True, False):
                s = ours.model_copy(update={"index_check_seconds": 0.2 if on else 10**6})
                first = 10**7 + (2 * group + on) * TRICKLE_DOCUMENTS
                rates[on].append(asyncio.run(trickle(s, work / f"trickle{first}", first, TRICKLE_DOCUMENTS)))
        say(f"  trickle into the indexed space, groups of {TRICKLE_DOCUMENTS} one-chunk documents: "
            f"{statistics.median(rates[True]):.1f} vectors/s with the bulk rule, "
            f"{statistics.median(rates[False]):.1f} without (index maintenance off), median of {TRICKLE_GROUPS}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--switch-chunks", type=int, default=10_000)
    parser.add_argument("--batch-chunks", type=int, default=50_000)
    parser.add_argument("--bulk-chunks", type=int, default=0, help="the bulk-load comparison at this many chunks")
    parser.add_argument("--dims", type=int, default=128, help="the MOCK embedder's dimensions for --bulk-chunks")
    args = parser.parse_args()
    with temporary_home() as tmp, FakeOpenAI(api_key=KEY, rpm=None, tpm=None,
                                                          batch_polls_until_done=2) as fake:
        work = Path(tmp)
        base = Settings(ingestflow_home=work / "home", log_level="WARNING")
        if args.switch_chunks:
            model_switch(base, fake, work, args.switch_chunks)
        if args.batch_chunks:
            batch_backfill(base, fake, work, args.batch_chunks)
        if args.bulk_chunks:
            run(args.bulk_chunks, dims=args.dims, base=base)


if __name__ == "__main__":
    main()
