"""Backfills: a model switch under search load, and the OpenAI Batch API (issue 9).

    .venv/bin/python bench/backfill.py [--switch-chunks 10000] [--batch-chunks 50000]

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
Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from decimal import Decimal
from pathlib import Path

import psycopg
from pydantic import SecretStr

from ingestflow.catalogue import openai_model
from ingestflow.config import ServiceMode, Settings
from ingestflow.operations import spaces
from ingestflow.operations.documents import submit_paths
from ingestflow.operations.search import search
from ingestflow.runtime import open_runtime
from ingestflow.services.costs import embedding_cost
from ingestflow.testing.fake_openai import FakeOpenAI
from support import fresh_database, temporary_home

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--switch-chunks", type=int, default=10_000)
    parser.add_argument("--batch-chunks", type=int, default=50_000)
    args = parser.parse_args()
    with temporary_home() as tmp, FakeOpenAI(api_key=KEY, rpm=None, tpm=None,
                                                          batch_polls_until_done=2) as fake:
        work = Path(tmp)
        base = Settings(ingestflow_home=work / "home", log_level="WARNING")
        if args.switch_chunks:
            model_switch(base, fake, work, args.switch_chunks)
        if args.batch_chunks:
            batch_backfill(base, fake, work, args.batch_chunks)


if __name__ == "__main__":
    main()
