"""Keyword search's per-tenant word statistics: what the word counts the writers keep
(migrations/0024_word_counts.sql) save at search time and cost on the write path.

    .venv/bin/python bench/keywords.py [--chunks 100000] [--rounds 2] [--ingest-docs 300]
                                       [--ingest-rounds 3] [--writers 8]

One fresh database (MOCK): a big tenant of ``--chunks`` chunks (bench/retrieval.py's latency
corpus: the benchmark documents' sentences shuffled into 10-chunk documents) and a small
one of 2 documents. Then, in the same run:
1. Word choice: the part of search.sql that picks the question's words and weighs them
   (words, corpus, searched), alone. Before: each word counted in the tenant's chunks with
   a GIN scan of its postings in all tenants (main before 0024). After: the counts table.
   Every question of the markdown corpus for both tenants, interleaved; p50/p95 ms, and
   whether both chose the same words with the same weights.
2. Write path: ``--ingest-docs`` new documents ingested into the big tenant per round,
   rounds alternating between the counts kept (after) and not kept (before: store.words'
   functions made no-ops, the write path as it was); chunks/s medians and their ratio.
   And the counting alone: 30 current documents locked and counted out, rolled back: ms
   per batch and per 1,000 chunks, to set against the pipeline's time per chunk.
3. Slots: ``--writers`` connections each committing transactions that count 20 of the big
   tenant's chunks in (or out) and then hold their locks 5 ms, as the rest of a completing
   transaction does; transactions/s with every writer on one slot against each on its
   connection's slot (store/words.py SLOTS), alternating.
Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest import mock

from psycopg import AsyncConnection
from pydantic import SecretStr
from retrieval import ingest, latency_corpus, markdown_corpus, percentile, sentences

from ingestflow.config import Settings
from ingestflow.operations.documents import submit_paths
from ingestflow.runtime import Runtime, open_runtime
from ingestflow.store import words
from ingestflow.store.sql import query
from support import fresh_database, temporary_home

# Word counts before migration 0024 (search.sql's first two parts then): each word counted
# in the tenant's chunks, up to the row budget, with a GIN scan of its postings.
BEFORE = """
WITH words AS MATERIALIZED (
    SELECT w.lexeme, (SELECT count(*) FROM (
               SELECT 1
               FROM chunks c
               WHERE c.tenant = %(tenant)s AND c.search_config = %(config)s::text AND c.search_vector @@ w.tsq
               LIMIT %(max_rows)s + 1) holding) AS chunks
    FROM unnest(tsvector_to_array(to_tsvector(%(config)s::text::regconfig, %(question)s))) AS l(lexeme)
    CROSS JOIN LATERAL (SELECT l.lexeme, any_of(ARRAY[l.lexeme]) AS tsq) w
    WHERE %(keyword)s
),
corpus AS MATERIALIZED (
    SELECT count(*) AS chunks FROM (
        SELECT 1
        FROM chunks c
        WHERE %(keyword)s AND c.tenant = %(tenant)s
        LIMIT ceil(%(max_rows)s / %(max_share)s::real)::bigint + 1) counted
),
"""


def part(start: str) -> str:
    """search.sql from ``start`` to where the question's query starts: its word choice."""
    text = query("search")
    return text[text.index(start):text.index("question AS MATERIALIZED")].rstrip().rstrip(",")


def after_statement() -> str:
    return part("WITH words AS MATERIALIZED") + "\nSELECT * FROM searched"


def before_statement() -> str:
    """The words and corpus counted as before, chosen from by search.sql's own rule."""
    return BEFORE + part("searched AS MATERIALIZED") + "\nSELECT * FROM searched"


async def word_choice(rt: Runtime, rounds: int) -> None:
    qs = [q.question for q in markdown_corpus(Path()).questions]
    s = rt.settings
    statements = {"before": before_statement(), "after": after_statement()}
    times: dict[tuple[str, str], list[float]] = {(w, t): [] for w in statements for t in ("big", "small")}
    same = 0
    async with rt.db.pool.connection() as conn:
        for _ in range(rounds):
            for question in qs:
                for tenant, name in (("default", "big"), ("small", "small")):
                    params = {"tenant": tenant, "config": s.search_language, "question": question, "keyword": True,
                              "max_rows": s.search_keyword_max_rows, "max_share": s.search_keyword_max_share}
                    chosen = {}
                    for which, statement in statements.items():
                        t0 = time.perf_counter()
                        chosen[which] = sorted(await (await conn.execute(statement, params)).fetchall())
                        times[(which, name)].append((time.perf_counter() - t0) * 1000)
                    same += chosen["before"] == chosen["after"]
    print(f"\n## Word choice: {len(qs)} questions x {rounds} rounds x 2 tenants, interleaved")
    for (which, name), ms in times.items():
        print(f"{which:<6} {name:<5} tenant  p50 {statistics.median(ms):6.1f} ms  p95 {percentile(ms, 0.95):6.1f} ms")
    for name in ("big", "small"):
        b, a = times[("before", name)], times[("after", name)]
        print(f"{name} tenant: after/before p50 x{statistics.median(a) / statistics.median(b):.3f}, "
              f"p95 x{percentile(a, 0.95) / percentile(b, 0.95):.3f}")
    print(f"same words and weights chosen: {same} of {len(qs) * rounds * 2}")


def new_documents(folder: Path, n: int, seed: int) -> None:
    """``n`` documents as latency_corpus writes them (10 chunks each), but new sources with
    new text each time: a file already stored (same bytes) is not ingested again."""
    rng, pool = random.Random(1000 + seed), sentences()
    folder.mkdir(parents=True)
    for d in range(n):
        (folder / f"r{seed}-{d:05}.md").write_text("\n\n".join(
            f"## Section {d}.{s}\n\n" + " ".join(rng.choice(pool) for _ in range(12)) for s in range(10)))


async def write_path(rt: Runtime, work: Path, docs: int, rounds: int) -> None:
    async def nothing(*_: Any, **__: Any) -> Any:
        return set()

    rates: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(rounds * 2):
        which = ("before", "after")[r % 2]
        folder = work / f"round{r}"
        new_documents(folder, docs, r)
        off = [mock.patch.object(words, name, nothing) for name in ("count", "current_versions", "current_among")]
        with contextlib.ExitStack() as patches:
            for patch in off if which == "before" else ():
                patches.enter_context(patch)
            t0 = time.perf_counter()
            await in_tenant(rt, folder, "default")
            rates[which].append(docs * 10 / (time.perf_counter() - t0))
    print(f"\n## Write path: {docs} documents ({docs * 10} chunks) per round, {rounds} rounds each, alternating, "
          "into the big tenant")
    for which, r in rates.items():
        print(f"{which:<6} chunks/s median {statistics.median(r):7.0f}  ({', '.join(f'{x:.0f}' for x in r)})")
    print(f"after/before: x{statistics.median(rates['after']) / statistics.median(rates['before']):.3f}")


async def count_cost(rt: Runtime, reps: int) -> None:
    """What keeping the counts adds to a completing transaction: locking 30 of the big
    tenant's current documents and counting their chunks out, rolled back each time."""
    async with rt.db.pool.connection() as conn:
        ids = [d for (d,) in await (await conn.execute(
            "SELECT id FROM documents WHERE tenant = 'default' AND is_current")).fetchall()]
        rng, ms, per_thousand = random.Random(7), [], []
        for _ in range(reps):
            batch = rng.sample(ids, 30)
            n = (await (await conn.execute("SELECT count(*) FROM chunks WHERE document_id = ANY(%s)",
                                           (batch,))).fetchone())[0]
            async with conn.transaction(force_rollback=True):
                t0 = time.perf_counter()
                await words.count(conn, removed=sorted(await words.current_versions(conn, batch)))
                ms.append((time.perf_counter() - t0) * 1000)
            per_thousand.append(ms[-1] * 1000 / n)
    print(f"\n## Count cost: 30 documents (~{n} chunks) locked and counted, {reps} times, rolled back")
    print(f"p50 {statistics.median(ms):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms per batch; "
          f"{statistics.median(per_thousand):.1f} ms per 1,000 chunks")


async def slots(rt: Runtime, writers: int, seconds: float) -> None:
    async with rt.db.pool.connection() as conn:
        sample = [v for (v,) in await (await conn.execute(
            "SELECT search_vector::text FROM chunks WHERE tenant = 'default' ORDER BY random() LIMIT 400")).fetchall()]
    url = rt.settings.database_url.get_secret_value()

    async def writer(one_slot: bool, until: float, seed: int) -> int:
        rng, done = random.Random(seed), 0
        async with await AsyncConnection.connect(url) as conn:
            slot = 0 if one_slot else words.slot(conn)
            while time.perf_counter() < until:
                batch = rng.sample(sample, 20)
                async with conn.transaction():
                    await conn.execute("SELECT count_chunk_words(%s, %s, %s::text[]::tsvector[], %s, %s)",
                                       (["slots-bench"] * 20, ["english"] * 20, batch,
                                        [1 if done % 2 == 0 else -1] * 20, slot))
                    await asyncio.sleep(0.005)
                done += 1
        return done

    rates: dict[str, list[float]] = {"one slot": [], "slots": []}
    for r in range(4):
        name = ("one slot", "slots")[r % 2]
        until = time.perf_counter() + seconds
        done = await asyncio.gather(*(writer(name == "one slot", until, w) for w in range(writers)))
        rates[name].append(sum(done) / seconds)
    print(f"\n## Slots: {writers} writers, 20 chunks per transaction, locks held 5 ms, {seconds:.0f} s x 2 each")
    for name, r in rates.items():
        print(f"{name:<8} transactions/s median {statistics.median(r):6.0f}  ({', '.join(f'{x:.0f}' for x in r)})")


async def run(base: Settings, work: Path, args: argparse.Namespace) -> None:
    url = fresh_database(base)
    settings = base.model_copy(update={"database_url": SecretStr(url), "hnsw_min_vectors": 10**9})
    latency_corpus(work / "big", args.chunks)
    latency_corpus(work / "small", 20)
    async with open_runtime(settings) as rt:
        started = time.perf_counter()
        made = await ingest(rt, [work / "big"])
        print(f"{made} chunks ingested in {time.perf_counter() - started:.0f} s")
        await in_tenant(rt, work / "small", "small")
        steps: list[Callable[[], Awaitable[None]]] = [
            lambda: word_choice(rt, args.rounds),
            lambda: write_path(rt, work / "write", args.ingest_docs, args.ingest_rounds),
            lambda: count_cost(rt, 40),
            lambda: slots(rt, args.writers, args.seconds),
        ]
        for step in steps:
            await step()


async def in_tenant(rt: Runtime, folder: Path, tenant: str) -> None:
    """Ingest a folder's files for ``tenant``, without retrieval.ingest's ANALYZE."""
    submitted = await submit_paths(rt, [folder], tenant)
    await rt.drain([s.registration.document_id for s in submitted if s.registration]).run()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ingest-docs", type=int, default=300)
    parser.add_argument("--ingest-rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with temporary_home() as tmp:
        base = Settings(ingestflow_home=tmp / "home", log_level="WARNING")
        asyncio.run(run(base, tmp, args))


if __name__ == "__main__":
    main()
