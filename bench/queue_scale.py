"""The queue at scale (issue 9): bounded batches with 100,000 documents queued.

    .venv/bin/python bench/queue_scale.py [--queued 100000] [--done 20000] [--sections 5]
                                          [--cycles 5] [--no-drain] [--plans]

On a fresh database of the embedded server, MOCK mode. Prints:
- set-up: --done documents of --sections one-chunk sections each (the last section the
  same text in every document) run to complete by an in-process worker, so the tables
  hold --done x --sections chunks with 1536-d vectors; then --queued one-paragraph
  documents registered through the store API (1,000 per transaction): the jobs table
  holds that many queued jobs. Seconds and rows of each table;
- one claim -> process cycle of a CLAIM_BATCH_SIZE job batch, in process: median
  and each run, with the queue holding only that batch, then with --queued behind it;
- for each query a worker runs per batch (and the periodic ones), EXPLAIN (ANALYZE,
  BUFFERS) with real parameters: the batch's ids, its owner, the MOCK space. Writes are
  rolled back. One line each: execution ms, rows examined (rows read by every scan,
  filtered ones included), the plan's nodes (Index Scan / Seq Scan / Bitmap ...) with
  the rows each read, and a flag (<<<) on any Seq Scan over a big table or any scan
  reading more rows than the query needs (20 per batch item for the queries run per
  batch). --plans prints each full text plan as well;
- with the queue drained by one `ingestflow worker` process: documents/s, and its RSS
  sampled along the way and at its peak (VmHWM).
Figures are printed; nothing is asserted. HNSW_MIN_VECTORS is set above every table
size, so no index build runs in the middle of the measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr

from ingestflow.config import Settings
from ingestflow.operations.documents import check_file
from ingestflow.runtime import Runtime, open_runtime
from ingestflow.store import documents, jobs
from ingestflow.store.sql import query

sys.path.insert(0, str(Path(__file__).parent))
from support import TOPICS, fresh_database, temporary_home  # noqa: E402

TENANT = "bench"
REGISTER_BATCH = 1000
LONG_ARRAY = re.compile(r"\{[^{}]{100,}\}")
BIG_TABLES = {"jobs", "documents", "chunks", "embeddings", "events", "document_texts", "ledger", "ledger_shares"}
FOOTER = ("## Terms\n\nThis message and its attachments are confidential. If you received it by mistake, "
          "tell the sender and delete it. Claims are handled under the terms of the service agreement.")


def paragraph(i: int, s: int = 0) -> str:
    topic = TOPICS[(i + s) % len(TOPICS)]
    return (f"Customer {i} wrote about {topic} number {(i * 7919 + s) % 100003}: the delivery to depot "
            f"{(i + s) % 97} arrived {i % 13} days late and the {topic} was settled by the "
            f"{TOPICS[(i + 3) % 8]} team.")


def done_doc(i: int, sections: int) -> bytes:
    parts = [f"## Case {i}, part {s}\n\n{paragraph(i, s)}" for s in range(sections - 1)] + [FOOTER]
    return "\n\n".join(parts).encode()


async def register(rt: Runtime, prefix: str, start: int, n: int, content: Callable[[int], bytes]) -> list[uuid.UUID]:
    """n documents named prefix-NNNNNN, through the store API, REGISTER_BATCH per transaction."""
    ids = []
    for first in range(start, start + n, REGISTER_BATCH):
        files = [check_file(f"{prefix}-{i:06}.md", content(i)) for i in range(first, min(first + REGISTER_BATCH,
                                                                                             start + n))]
        async with rt.db.pool.connection() as conn, conn.transaction():
            ids += [r.document_id for r in await documents.register(conn, tenant=TENANT, files=files,
                                                                     store=rt.files)]
    return ids


async def cycle(rt: Runtime) -> float:
    """One claim, as the worker makes it (its own method: CLAIM_BATCH_SIZE jobs within
    CLAIM_BATCH_BYTES), and the whole batch run to complete."""
    worker = rt.worker()
    started = time.perf_counter()
    owner = f"{worker.owner}/0"
    await worker.process(await worker._claim(owner), owner)
    return time.perf_counter() - started


def table_rows(url: str) -> str:
    with psycopg.connect(url) as conn:
        return ", ".join(f"{name} {conn.execute(f'SELECT count(*) FROM {name}').fetchone()[0]:,}"
                         for name in sorted(BIG_TABLES))


# -- EXPLAIN -------------------------------------------------------------------------------


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in walk(child))]


def summary(plan: dict[str, Any], bound: int) -> str:
    nodes = walk(plan["Plan"])
    parts, examined, flags = [], 0, []
    for node in nodes:
        kind, table, index = node["Node Type"], node.get("Relation Name"), node.get("Index Name")
        if table is None and index is None:
            continue
        read = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
                + node.get("Rows Removed by Index Recheck", 0)) * node.get("Actual Loops", 1)
        if kind == "ModifyTable":
            parts.append(f"{node.get('Operation', kind)} {table}")
            continue
        examined += read
        parts.append(f"{kind} {table or ''}{f' ({index})' if index else ''} {read:,.0f}")
        if kind == "Seq Scan" and table in BIG_TABLES:
            flags.append(f"SEQ SCAN {table}")
        if read > bound and not (table or "").startswith("pg_"):
            flags.append(f"{table or index} read {read:,.0f} rows (bound {bound:,})")
    triggers = sum(t["Time"] for t in plan.get("Triggers", []))
    return (f"{plan['Execution Time']:8.2f} ms  examined {examined:>9,.0f}  " + " | ".join(parts)
            + (f" | triggers {triggers:.1f} ms" if triggers else "") + ("  <<< " + "; ".join(flags) if flags else ""))


def explain(url: str, label: str, name: str, params: dict[str, Any], bound: int, *, setup: str | None = None,
            setup_params: dict[str, Any] | None = None, full: bool = False) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of a named query in a transaction that is rolled back;
    flagged when a scan reads more than ``bound`` rows."""
    try:
        sql = query(name)
    except FileNotFoundError:
        print(f"  {label:<44} {name}.sql not found")
        return
    with psycopg.connect(url) as conn:
        try:
            out = []
            for form in ("FORMAT JSON", "FORMAT TEXT") if full else ("FORMAT JSON",):
                with conn.transaction(force_rollback=True):
                    if setup:
                        conn.execute(setup, setup_params or params)
                    out.append(conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, {form}) {sql}", params).fetchall())
        except psycopg.Error as exc:
            print(f"  {label:<44} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            return
    first = out[0][0][0]
    plan = (json.loads(first) if isinstance(first, str) else first)[0]
    print(f"  {label:<44} {summary(plan, bound)}")
    if full:  # long id arrays shortened
        print("\n".join(f"      {re.sub(LONG_ARRAY, '{...}', row[0])}" for row in out[1]))


def explain_all(url: str, owner: str, batch: list[tuple[int, uuid.UUID]], queued: int, full: bool,
                max_bytes: int) -> None:
    """Every hot query with the real parameters of one claimed batch (jobs running, owned by
    ``owner``) and of a batch of complete documents (chunks, vectors)."""
    job_ids, ids = [j for j, _ in batch], [d for _, d in batch]
    n = len(batch)
    b = 20 * n  # rows a batch query may read: a few chunks per document, index and heap
    with psycopg.connect(url) as conn:
        space_id = conn.execute("SELECT id FROM embedding_spaces ORDER BY id LIMIT 1").fetchone()[0]
        done = [r[0] for r in conn.execute("SELECT id FROM documents WHERE stage = 'complete' ORDER BY random()"
                                           " LIMIT %s", (n,))]
        names = conn.execute("SELECT tenant, source_name FROM documents WHERE id = ANY(%s)", (ids,)).fetchall()
        every = [r[0] for r in conn.execute("SELECT document_id FROM jobs WHERE state IN ('ready', 'running')")]
    lease = {"owner": owner, "lease_seconds": 60.0}
    claim = {**lease, "limit": n, "max_bytes": max_bytes, "at_least_one": True}
    unvectored = ("DELETE FROM embeddings WHERE space_id = %(space_id)s"
                  " AND chunk_id IN (SELECT id FROM chunks WHERE document_id = ANY(%(ids)s))")
    new_files = [(f"new-{i:06}.md", f"{i}".encode()) for i in range(REGISTER_BATCH)]
    print(f"\nEXPLAIN (ANALYZE, BUFFERS), {queued:,} jobs queued, batch of {n} (rows examined: read by every scan)")
    print(" jobs (claim, fence, settle)")
    explain(url, "claim_jobs (the next batch)", "claim_jobs", claim, b, full=full)
    explain(url, "claim_jobs, every queued job deferred", "claim_jobs", claim, b, full=full,
            setup="UPDATE jobs SET next_attempt_at = now() + interval '1 hour' WHERE state = 'ready'")
    explain(url, "renew_leases (every stage's fence)", "renew_leases",
            {**lease, "job_ids": job_ids, "progress": True}, b, full=full)
    explain(url, "finish_jobs", "finish_jobs", {"job_ids": job_ids, "owner": owner, "state": "done",
                                               "last_error": None}, b, full=full)
    explain(url, "release_jobs", "release_jobs", {"job_ids": job_ids, "owner": owner}, b, full=full)
    explain(url, "reschedule_jobs", "reschedule_jobs", {"job_ids": job_ids, "owners": [owner] * n,
            "delays": [5.0] * n, "reasons": ["bench"] * n, "deferred": [True] * n}, b, full=full)
    print(" documents")
    explain(url, "get_documents", "get_documents", {"ids": ids}, b, full=full)
    explain(url, "advance_documents (queued -> parsing)", "advance_documents",
            {"ids": ids, "from_stages": ["queued", "parsing"], "to_stage": "parsing"}, b, full=full)
    explain(url, "lock_sources", "lock_sources", {"tenants": [t for t, _ in names], "names": [s for _, s in names]},
            b, full=full)
    explain(url, "load_texts (complete batch)", "load_texts", {"ids": done}, b, full=full)
    explain(url, "set_degraded", "set_degraded", {"ids": ids, "flags": [False] * n}, b, full=full)
    explain(url, "newer_current", "newer_current", {"ids": ids}, b, full=full)
    explain(url, "swap_current", "swap_current", {"ids": ids}, b, full=full)
    explain(url, "set_current", "set_current", {"ids": ids}, b, full=full)
    explain(url, "drop_document_content (complete batch)", "drop_document_content", {"ids": done}, b, full=full)
    print(" chunks and vectors (a batch of complete documents, its vectors deleted first)")
    vec = {"ids": done, "space_id": space_id}
    explain(url, "delete_chunks", "delete_chunks", {"ids": done}, b, full=full)
    explain(url, "chunks_without_vectors (all present)", "chunks_without_vectors", vec, b, full=full)
    explain(url, "chunks_without_vectors (none present)", "chunks_without_vectors", vec, b, full=full,
            setup=unvectored)
    explain(url, "reuse_vectors", "reuse_vectors", vec, b, full=full, setup=unvectored)
    explain(url, "delete_space_vectors", "delete_space_vectors", vec, b, full=full)
    print(" periodic (every worker)")
    explain(url, "sweep_reservations", "sweep_reservations", {"jobless_after_seconds": 3600.0}, 1000, full=full)
    explain(url, "schedule_repairs (HYBRID, rolled back)", "schedule_repairs", {}, 1000, full=full)
    explain(url, "spaces_without_index", "spaces_without_index", {}, 1000, full=full)
    explain(url, "space_has_vectors", "space_has_vectors", {"space_id": space_id, "min_vectors": 10_000}, 10_000,
            full=full)
    print(" submit, drain and monitoring (not per batch)")
    explain(url, f"register_lookup ({REGISTER_BATCH} new files)", "register_lookup",
            {"tenant": TENANT, "names": [f for f, _ in new_files],
             "shas": [documents.sha256_hex(d) for _, d in new_files]}, 20 * REGISTER_BATCH, full=full)
    explain(url, f"pending_jobs ({len(every):,} ids: ingest's drain)", "pending_jobs", {"ids": every},
            len(every), full=full)
    explain(url, f"document_progress ({len(every):,} ids: ingest's redraw)", "document_progress",
            {"tenant": TENANT, "ids": every}, 20 * len(every), full=full)
    explain(url, "backlog (EMBEDDING_BATCH_API=auto, per embed)", "backlog", {"cap": 10_000}, 10_000, full=full)
    explain(url, "queue_depth (metrics, status)", "queue_depth", {"tenant": None}, 1000, full=full)


# -- draining with a worker process --------------------------------------------------------


def rss(pid: int) -> dict[str, int]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: int(v.split()[0]) // 1024 for k, v in (line.split(":", 1) for line in lines)
            if k in ("VmRSS", "VmHWM")}


def drain(settings: Settings, url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "INGESTFLOW_HOME": str(settings.ingestflow_home),
           "LOG_LEVEL": "WARNING", "HNSW_MIN_VECTORS": str(settings.hnsw_min_vectors)}
    with psycopg.connect(url, autocommit=True) as conn:
        left = start = conn.execute("SELECT count(*) FROM jobs WHERE state IN ('ready', 'running')").fetchone()[0]
        proc = subprocess.Popen([sys.executable, "-m", "ingestflow", "worker"], env=env)
        started, samples, peak, next_sample = time.perf_counter(), [], {}, 0.0
        try:
            while left:
                time.sleep(0.5)
                left = conn.execute("SELECT count(*) FROM jobs WHERE state IN ('ready', 'running')").fetchone()[0]
                peak = rss(proc.pid)
                if time.perf_counter() - started >= next_sample:
                    samples.append(f"{start - left:,} done: {peak['VmRSS']} MB")
                    next_sample += 15
            wall = time.perf_counter() - started
            samples.append(f"{start - left:,} done: {peak['VmRSS']} MB")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(f"\ndrain: one worker process ran {start:,} queued jobs in {wall:.1f} s ({start / wall:.0f} docs/s, "
          f"start-up included); peak RSS {peak['VmHWM']} MB")
    print("  RSS along the way: " + "; ".join(samples))


# -- main ----------------------------------------------------------------------------------


async def scenario(settings: Settings, args: argparse.Namespace) -> None:
    async with open_runtime(settings, pool_size=8) as rt:
        url = rt.db.url
        started = time.perf_counter()
        ids = await register(rt, "done", 0, args.done, lambda i: done_doc(i, args.sections))
        await rt.drain(ids).run()
        print(f"set-up: {args.done:,} documents of {args.sections} sections complete in "
              f"{time.perf_counter() - started:.1f} s")
        small = lambda i: paragraph(i).encode()  # noqa: E731  (distinct bytes: no document is a duplicate)
        alone, size = [], rt.settings.claim_batch_size
        for n in range(args.cycles):
            await register(rt, "alone", 10_000_000 + n * size, size, small)
            alone.append(await cycle(rt))
        started = time.perf_counter()
        await register(rt, "queued", 0, args.queued, small)
        print(f"set-up: {args.queued:,} documents queued in {time.perf_counter() - started:.1f} s "
              f"({table_rows(url)})")
        behind = [await cycle(rt) for _ in range(args.cycles)]
        for label, runs in (("alone in the queue", alone), (f"{args.queued:,} queued behind", behind)):
            print(f"cycle (claim {rt.settings.claim_batch_size} + process), {label:<22} "
                  f"{statistics.median(runs):6.3f} s  [runs {', '.join(f'{r:.3f}' for r in runs)}]")
        worker = rt.worker()
        claimed = await worker._claim()
        explain_all(url, worker.owner, [(j.id, j.document_id) for j in claimed], args.queued, args.plans,
                    rt.settings.claim_batch_bytes)
        async with rt.db.pool.connection() as conn:  # the bench's claim, back to the queue
            await jobs.release(conn, [j.id for j in claimed], worker.owner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--done", type=int, default=20_000)
    parser.add_argument("--sections", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--no-drain", action="store_true")
    parser.add_argument("--plans", action="store_true", help="print every full text plan too")
    args = parser.parse_args()
    with temporary_home() as tmp:
        base = Settings(ingestflow_home=Path(tmp) / "home", log_level="WARNING",
                        hnsw_min_vectors=10 * (args.done * args.sections + args.queued))
        settings = base.model_copy(update={"database_url": SecretStr(fresh_database(base))})
        asyncio.run(scenario(settings, args))
        if not args.no_drain:
            drain(settings, settings.database_url.get_secret_value())


if __name__ == "__main__":
    main()
