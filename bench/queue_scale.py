"""The queue at scale (issue 9): bounded batches with 100,000 documents queued; with --bulk,
no query scanning a table per batch at 1M chunks and 1M jobs (issue 16).

    .venv/bin/python bench/queue_scale.py [--queued 100000] [--done 20000] [--sections 5]
                                          [--cycles 5] [--no-drain] [--plans]
                                          [--bulk [--tenants 100] [--dims 16]] [--home DIR [--database NAME]]
    # issue 16's sizes: 1M chunks with vectors, 1.2M jobs (1M queued)
    .venv/bin/python bench/queue_scale.py --bulk --done 200000 --queued 1000000 --cycles 3 --no-drain

--bulk loads the --done documents without a worker, through the store's own functions
(register, save_texts, chunks.replace's COPY, advance, write_vectors' binary COPY,
make_current; only marking their jobs done is plain SQL), 90% for one tenant and the rest
for --tenants small ones, each document ending in one shared footer text. Its vectors are
random and --dims-d (MOCK_EMBEDDING_DIMENSIONS, so the space is declared with that width
and the worker's cycles write into it): the embedding column is an untyped halfvec and
none of these queries reads a vector's values, so their plans do not depend on the width,
while 16-d keeps the load fast and the disk small. --home keeps the server's data folder;
--database NAME measures that database again (after a fix, say) without loading anything.
Delete the folder afterwards.

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
  batch). Each query runs twice: with its values (a custom plan), then prepared as psycopg
  prepares it and run under plan_cache_mode = force_generic_plan ("generic plan"), the plan
  a pooled connection may keep once a statement ran five times; a generic plan of an OR or
  a range over a partial index once read a whole index per call. --plans prints each full
  text plan as well;
- with the queue drained by one `ingestflow worker` process: documents/s, and its RSS
  sampled along the way and at its peak (VmHWM).
Figures are printed; nothing is asserted. HNSW_MIN_VECTORS is set above every table
size, so no index build runs in the middle of the measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
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

import numpy as np
import psycopg
from psycopg._queries import PostgresQuery  # psycopg's own conversion: the statement it would prepare
from psycopg.adapt import Transformer
from psycopg.pq import ExecStatus as pq_status
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from ingestflow.config import Settings
from ingestflow.operations.documents import check_file
from ingestflow.runtime import Runtime, open_runtime
from ingestflow.lifecycle import PIPELINE
from ingestflow.store import chunks, documents, embedded, jobs, vectors
from ingestflow.store.database import database_url
from ingestflow.store.sql import query

sys.path.insert(0, str(Path(__file__).parent))
from support import TOPICS, fresh_database, temporary_home  # noqa: E402

TENANT = "bench"
REGISTER_BATCH = 1000
LONG_ARRAY = re.compile(r"\{[^{}]{100,}\}")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
BIG_TABLES = {"jobs", "documents", "chunks", "embeddings", "events", "document_texts", "ledger", "ledger_shares"}
# The bulk load's one statement outside the store's functions: finish_jobs needs a claim.
BULK_JOBS_DONE = "UPDATE jobs SET state = 'done', updated_at = now() WHERE document_id = ANY(%(ids)s)"
FOOTER = ("## Terms\n\nThis message and its attachments are confidential. If you received it by mistake, "
          "tell the sender and delete it. Claims are handled under the terms of the service agreement.")


def paragraph(i: int, s: int = 0) -> str:
    topic = TOPICS[(i + s) % len(TOPICS)]
    return (f"Customer {i} wrote about {topic} number {(i * 7919 + s) % 100003}: the delivery to depot "
            f"{(i + s) % 97} arrived {i % 13} days late and the {topic} was settled by the "
            f"{TOPICS[(i + 3) % 8]} team.")


def done_parts(i: int, sections: int) -> list[str]:
    return [f"## Case {i}, part {s}\n\n{paragraph(i, s)}" for s in range(sections - 1)] + [FOOTER]


def done_doc(i: int, sections: int) -> bytes:
    return "\n\n".join(done_parts(i, sections)).encode()


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


async def bulk_done(rt: Runtime, n: int, sections: int, tenants: int) -> int:
    """``n`` complete documents of ``sections`` chunks each, with ``dims``-d vectors in a space
    (the MOCK space, declared with MOCK_EMBEDDING_DIMENSIONS=dims), written through the store's functions, not a worker: register, save_texts,
    chunks.replace (COPY), advance through every stage, write_vectors (binary COPY of random
    vectors) and
    make_current, REGISTER_BATCH documents (or a tenant's share of them) per transaction. The one step in plain SQL marks
    their jobs done (finish_jobs needs a claim). The last section is FOOTER in every
    document, so one text is shared by n chunks across the tenants. Tenant ``bench`` holds
    90% of the documents (the first ones), ``tenants`` small tenants the rest. Returns the
    space's id."""
    rng = np.random.default_rng(7)
    async with rt.db.pool.connection() as conn:
        spec = rt.services.embedder_spec  # MOCK at MOCK_EMBEDDING_DIMENSIONS=dims: the worker's own space
        space_id = await vectors.ensure_space(conn, spec.provider, spec.name, spec.dimensions)
    big = n * 9 // 10
    stages = [s.value for s in PIPELINE]
    for first in range(0, n, REGISTER_BATCH):
        last = min(first + REGISTER_BATCH, n)
        groups: dict[str, list[int]] = {}
        for i in range(first, last):
            groups.setdefault(TENANT if i < big or not tenants else f"small-{i % tenants:03}", []).append(i)
        for tenant, numbers in groups.items():  # a transaction each (chunks.replace's staging table)
            async with rt.db.pool.connection() as conn, conn.transaction():
                files = [check_file(f"done-{i:07}.md", done_doc(i, sections)) for i in numbers]
                ids = [r.document_id for r in await documents.register(conn, tenant=tenant, files=files,
                                                                         store=rt.files)]
                await documents.save_texts(conn, [documents.Text(d, f.data.decode(), [], "markdown", None)
                                                  for d, f in zip(ids, files, strict=True)])
                written = {d: [chunks.NewChunk(o, text, text, len(text) // 5, {"heading_path": [f"Case {i}"]})
                               for o, text in enumerate(done_parts(i, sections))]
                           for d, i in zip(ids, numbers, strict=True)}
                await chunks.replace(conn, written, search_config=rt.settings.search_language)
                for before, after in itertools.pairwise(stages):
                    await documents.advance(conn, ids, [before], after)
                await conn.execute(BULK_JOBS_DONE, {"ids": ids})
                chunk_ids = [documents.chunk_id(d, c.ordinal) for d, rows in written.items() for c in rows]
                await vectors.write_vectors(conn, chunk_ids, space_id,
                                            rng.standard_normal((len(chunk_ids), spec.dimensions), dtype=np.float32))
                await documents.lock_sources(conn, [(tenant, f.source_name) for f in files])
                await documents.make_current(conn, ids)
                await vectors.adopt_space(conn, [tenant], space_id)
    return space_id


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


def prepare_generic(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> tuple[str, None]:
    """The statement prepared as psycopg prepares it (its $n text and its parameter types,
    from psycopg's own query converter), to be run under force_generic_plan: the plan a
    pooled connection keeps after five executions, which sees no parameter values."""
    pq = PostgresQuery(Transformer(conn))
    pq.convert(sql, params)
    result = conn.pgconn.prepare(b"bench_generic", pq.query, pq.types)
    if result.status != pq_status.COMMAND_OK:
        raise psycopg.ProgrammingError(result.get_error_field(psycopg.pq.DiagnosticField.MESSAGE_PRIMARY))
    names = list(dict.fromkeys(PLACEHOLDER.findall(sql)))
    # EXPLAIN takes no bind parameters: the values are quoted in (a client-side cursor)
    args = psycopg.ClientCursor(conn).mogrify(", ".join("%s" for _ in names), [params[k] for k in names])
    return f"EXECUTE bench_generic({args})" if names else "EXECUTE bench_generic", None


def explain(url: str, label: str, name: str, params: dict[str, Any], bound: int, *, setup: str | None = None,
            setup_params: dict[str, Any] | None = None, full: bool = False) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of a named query in a transaction that is rolled back, with
    its parameters' values (a custom plan) and then as a generic plan; flagged when a scan
    reads more than ``bound`` rows."""
    try:
        sql = query(name)
    except FileNotFoundError:
        print(f"  {label:<44} {name}.sql not found")
        return
    for generic in (False, True):
        with psycopg.connect(url) as conn:
            try:
                out = []
                if generic:
                    conn.execute("SET plan_cache_mode = force_generic_plan")
                    statement, values = prepare_generic(conn, sql, params)
                else:
                    statement, values = sql, params
                for form in ("FORMAT JSON", "FORMAT TEXT") if full else ("FORMAT JSON",):
                    with conn.transaction(force_rollback=True):
                        if setup:
                            conn.execute(setup, setup_params or params)
                        out.append(conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, {form}) {statement}",
                                                values).fetchall())
            except psycopg.Error as exc:
                print(f"  {label + (' [generic]' if generic else ''):<44} failed: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0]}")
                continue
        first = out[0][0][0]
        plan = (json.loads(first) if isinstance(first, str) else first)[0]
        print(f"  {'  generic plan' if generic else label:<44} {summary(plan, bound)}")
        if full:  # long id arrays shortened
            print("\n".join(f"      {re.sub(LONG_ARRAY, '{...}', row[0])}" for row in out[1]))


def explain_all(url: str, owner: str, batch: list[tuple[int, uuid.UUID]], queued: int, full: bool,
                max_bytes: int) -> None:
    """Every hot query with the real parameters of one claimed batch (jobs running, owned by
    ``owner``) and of a batch of complete documents (chunks, vectors)."""
    job_ids, ids = [j for j, _ in batch], [d for _, d in batch]
    n = len(batch)
    b = 20 * n  # rows a batch query may read: a few chunks per document, index and heap
    with psycopg.connect(url) as conn:  # the space of the complete documents' vectors
        space_id = conn.execute("SELECT space_id FROM active_spaces WHERE tenant = %s", (TENANT,)).fetchone()[0]
        done = [r[0] for r in conn.execute("SELECT id FROM documents WHERE stage = 'complete' ORDER BY random()"
                                           " LIMIT %s", (n,))]
        small_done = [r[0] for r in conn.execute("SELECT id FROM documents WHERE stage = 'complete'"
                                                 " AND tenant <> %s ORDER BY random() LIMIT %s", (TENANT, n))]
        small = conn.execute("SELECT min(tenant) FROM documents WHERE tenant <> %s", (TENANT,)).fetchone()[0]
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
    if small_done:
        explain(url, "reuse_vectors (small tenants' documents)", "reuse_vectors",
                {"ids": small_done, "space_id": space_id}, b, full=full, setup=unvectored)
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
    print(" dashboard, status and metrics (per poll)")
    dash = {"tenant": TENANT}
    for tenant in (TENANT, small):
        explain(url, f"queue_depth ({tenant})", "queue_depth", {"tenant": tenant}, 1000, full=full)
        explain(url, f"stage_counts ({tenant})", "stage_counts", {"tenant": tenant}, 1000, full=full)
    explain(url, "recent_documents (20)", "recent_documents", {**dash, "limit": 20}, 1000, full=full)
    explain(url, "recent_errors (10)", "recent_errors", {**dash, "limit": 10}, 1000, full=full)
    explain(url, "throughput (last hour)", "throughput", {**dash, "buckets": 60, "width": 60}, 1000, full=full)
    explain(url, "list_documents (first page of 50)", "list_documents",
            {**dash, "stage": None, "after_created": None, "after_id": None, "limit": 50}, 1000, full=full)
    explain(url, "list_documents (complete, first page)", "list_documents",
            {**dash, "stage": "complete", "after_created": None, "after_id": None, "limit": 50}, 1000, full=full)
    explain(url, "reembed_jobs", "reembed_jobs", dash, 1000, full=full)
    explain(url, "open_batch_count", "open_batch_count", dash, 1000, full=full)
    explain(url, "workers_alive", "workers_alive", {}, 1000, full=full)
    explain(url, "active_space", "active_space", dash, 1000, full=full)
    explain(url, "metrics_stages (every document)", "metrics_stages", {}, 1000, full=full)
    explain(url, "metrics_stage_durations", "metrics_stage_durations", {}, 1000, full=full)
    explain(url, "stale_statistics", "stale_statistics", {"min_rows": 1000}, 1000, full=full)


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
        if not args.database:
            started = time.perf_counter()
            if args.bulk:
                await bulk_done(rt, args.done, args.sections, args.tenants)
                how = f"through the store's functions, {args.dims}-d vectors"
            else:
                ids = await register(rt, "done", 0, args.done, lambda i: done_doc(i, args.sections))
                await rt.drain(ids).run()
                how = "by an in-process worker"
            print(f"set-up: {args.done:,} documents of {args.sections} sections complete ({how}) in "
                  f"{time.perf_counter() - started:.1f} s")
        small = lambda i: paragraph(i).encode()  # noqa: E731  (distinct bytes: no document is a duplicate)
        alone, size = [], rt.settings.claim_batch_size
        if not args.database:
            for n in range(args.cycles):
                await register(rt, "alone", 10_000_000 + n * size, size, small)
                alone.append(await cycle(rt))
            started = time.perf_counter()
            await register(rt, "queued", 0, args.queued, small)
            print(f"set-up: {args.queued:,} documents queued in {time.perf_counter() - started:.1f} s")
        print(f"tables: {table_rows(url)}")
        behind = [await cycle(rt) for _ in range(args.cycles)]
        for label, runs in (("alone in the queue", alone), ("the queue behind", behind)):
            if runs:
                print(f"cycle (claim {rt.settings.claim_batch_size} + process), {label:<22} "
                      f"{statistics.median(runs):6.3f} s  [runs {', '.join(f'{r:.3f}' for r in runs)}]")
        owner = f"{rt.worker().owner}/0"
        claimed = await rt.worker()._claim(owner)
        explain_all(url, owner, [(j.id, j.document_id) for j in claimed], args.queued, args.plans,
                    rt.settings.claim_batch_bytes)
        async with rt.db.pool.connection() as conn:  # the bench's claim, back to the queue
            await jobs.release(conn, [j.id for j in claimed], owner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--done", type=int, default=20_000)
    parser.add_argument("--sections", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--bulk", action="store_true",
                        help="load the --done documents through the store's functions, not a worker")
    parser.add_argument("--tenants", type=int, default=100, help="small tenants sharing 10%% of --bulk documents")
    parser.add_argument("--dims", type=int, default=16, help="dimensions of the --bulk vectors' space")
    parser.add_argument("--home", type=Path, help="keep the home (and its database server) here, not in /tmp")
    parser.add_argument("--database", help="measure this database of --home again, loading nothing")
    parser.add_argument("--no-drain", action="store_true")
    parser.add_argument("--plans", action="store_true", help="print every full text plan too")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        home = args.home or stack.enter_context(temporary_home()) / "home"
        if args.home:
            stack.callback(embedded.stop_all)
        base = Settings(ingestflow_home=home, log_level="WARNING",
                        mock_embedding_dimensions=args.dims if args.bulk else 1536,
                        hnsw_min_vectors=10 * (args.done * args.sections + args.queued))
        url = (make_conninfo(database_url(base), dbname=args.database) if args.database
               else fresh_database(base))
        print(f"database: {psycopg.conninfo.conninfo_to_dict(url)['dbname']} under {home}")
        settings = base.model_copy(update={"database_url": SecretStr(url)})
        asyncio.run(scenario(settings, args))
        if not args.no_drain:
            drain(settings, settings.database_url.get_secret_value())


if __name__ == "__main__":
    main()
