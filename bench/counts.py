"""Counts at scale (issue 30.2): status, the dashboard, /metrics, a documents page and a
document's detail over a database of N chunks and N jobs, p50/p95 of each through the real
code paths, and EXPLAIN (ANALYZE, BUFFERS) of every query they run that counts.

    .venv/bin/python bench/counts.py --n 100000 [--calls 50] [--home DIR]

The database is loaded straight into the tables with generate_series (not through the
pipeline): N/5 complete documents of 5 chunks each (N chunks) and as many queued ones as
make N jobs, 90% in tenant ``bench`` and the rest in 100 small tenants, stage_done events
and ledger rows for the complete ones, a few running and waiting jobs. The tallies are
written by their triggers as the rows go in, as they would be by the pipeline. Status is
``operations.documents.overview`` (what ``ingestflow status`` calls); the others are the
API app in-process (httpx's ASGI transport: the whole app, routes, middleware and
dependencies, without a socket; an API key of tenant ``bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr

from ingestflow.config import Settings
from ingestflow.store import embedded
from ingestflow.store.sql import query

sys.path.insert(0, str(Path(__file__).parent))
from support import fresh_database, temporary_home  # noqa: E402

TENANT, SMALL = "bench", "small-007"
CHUNKS_PER_DOCUMENT = 5
TARGET_MS = 50.0
BOUND = 10_000  # rows a bounded count may read (flagged beyond)
BIG_TABLES = {"documents", "jobs", "chunks", "events", "ledger", "embeddings"}

LOAD = [
    "ALTER TABLE documents DISABLE TRIGGER documents_stage_transition",  # complete from nothing
    # complete documents (%(done)s), then queued ones up to %(jobs)s; 1 in 10 in a small tenant
    """INSERT INTO documents (id, tenant, source_name, version, mime, size_bytes, sha256, stage, is_current,
                              parser, correlation_id, chunking, created_at, updated_at)
       SELECT md5('doc' || i)::uuid, CASE WHEN i %% 10 = 0 THEN 'small-' || lpad((i / 10 %% 100)::text, 3, '0')
                                         ELSE 'bench' END,
              'file-' || i || '.md', 1, 'text/markdown', 1000, md5('sha' || i),
              CASE WHEN i <= %(done)s THEN 'complete' ELSE 'queued' END, i <= %(done)s,
              CASE WHEN i <= %(done)s THEN 'markdown' END, gen_random_uuid(),
              CASE WHEN i <= %(done)s THEN %(chunking)s::jsonb END,
              now() - interval '2 days' + i * interval '100 ms', now() - interval '1 day' + i * interval '50 ms'
       FROM generate_series(1, %(jobs)s) i""",
    "ALTER TABLE documents ENABLE TRIGGER documents_stage_transition",
    """INSERT INTO chunks (id, document_id, ordinal, text, text_sha256, token_count, metadata, search_config,
                           search_vector, tenant)
       SELECT md5('chunk' || i || '-' || o)::uuid, md5('doc' || i)::uuid, o, 'chunk ' || o || ' of document ' || i,
              md5('text' || i || '-' || o), 12, '{}'::jsonb, 'english', ''::tsvector,
              CASE WHEN i %% 10 = 0 THEN 'small-' || lpad((i / 10 %% 100)::text, 3, '0') ELSE 'bench' END
       FROM generate_series(1, %(done)s) i CROSS JOIN generate_series(0, %(per)s - 1) o""",
    """INSERT INTO jobs (document_id, tenant, state, next_attempt_at, attempts, created_at)
       SELECT md5('doc' || i)::uuid, CASE WHEN i %% 10 = 0 THEN 'small-' || lpad((i / 10 %% 100)::text, 3, '0')
                                          ELSE 'bench' END,
              CASE WHEN i <= %(done)s THEN 'done' WHEN i %% 1000 = 1 THEN 'running' ELSE 'ready' END,
              CASE WHEN i %% 997 = 0 THEN now() + interval '10 minutes' WHEN i %% 991 = 0 THEN now() + interval '20 s'
                   ELSE now() - interval '1 hour' + i * interval '1 ms' END, 1, now() - interval '1 day'
       FROM generate_series(1, %(jobs)s) i""",
    """INSERT INTO events (document_id, correlation_id, kind, stage, detail, created_at)
       SELECT md5('doc' || i)::uuid, NULL, 'stage_done', s.stage, jsonb_build_object('seconds', 0.01 * (i %% 7)),
              now() - interval '1 day' + i * interval '10 ms'
       FROM generate_series(1, %(done)s) i CROSS JOIN unnest(ARRAY['parsed', 'chunked', 'embedded', 'complete']) s(stage)""",
    """INSERT INTO ledger (service, model, unit, units, cost_usd, state, outcome, tenant, created_at, settled_at)
       SELECT 'openai', 'text-embedding-3-small', 'tokens', 2000, 0.00004, 'settled', 'ok',
              CASE WHEN i %% 10 = 0 THEN 'small-' || lpad((i / 10 %% 100)::text, 3, '0') ELSE 'bench' END,
              now() - interval '1 day', now() - interval '1 day'
       FROM generate_series(1, %(done)s / 20) i""",
    # the last quarter hour's work, for the dashboard's throughput
    """INSERT INTO events (document_id, kind, stage, detail, created_at)
       SELECT md5('doc' || i)::uuid, 'stage_done', 'complete', '{"seconds": 0.02, "chunks": 5}',
              now() - i * interval '10 ms'
       FROM generate_series(1, least(%(done)s, 5000)) i""",
]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def load(url: str, n: int, chunking: dict[str, int]) -> float:
    started = time.monotonic()
    params = {"done": n // CHUNKS_PER_DOCUMENT, "jobs": n, "per": CHUNKS_PER_DOCUMENT,
              "chunking": json.dumps(chunking)}
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in LOAD:
            conn.execute(statement, params)
        with conn.transaction():  # as workers do every heartbeat interval
            conn.execute(query("fold_tallies"))
        # The load's row triggers appended a row per event (805,000 at 1M) at once, which
        # workers folding every few seconds never let pile up: compact what the fold left.
        conn.execute("VACUUM FULL document_tallies, job_tallies, stage_time_tallies, throughput_tallies, "
                     "ledger_tallies")
        conn.execute("VACUUM ANALYZE")  # as autovacuum would, after a load this size
    return time.monotonic() - started


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in walk(child))]


def explain(conn: psycopg.Connection, name: str, params: dict[str, Any]) -> str:
    """One line: time, rows each scan read, and a flag for a scan of a big table or one
    reading more than BOUND rows."""
    with conn.transaction(force_rollback=True):
        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query(name)}", params).fetchone()[0][0]
    parts, flags = [], []
    for node in walk(plan["Plan"]):
        table, index = node.get("Relation Name"), node.get("Index Name")
        if table is None and index is None:
            continue
        read = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * node.get("Actual Loops", 1)
        hit = node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)
        parts.append(f"{node['Node Type']} {table or ''}{f' ({index})' if index else ''}: {read:,.0f} rows,"
                     f" {hit:,} buffers")
        if node["Node Type"] == "Seq Scan" and table in BIG_TABLES:
            flags.append(f"SEQ SCAN {table}")
        if read > BOUND:
            flags.append(f"{table or index} read {read:,.0f} rows")
    return (f"  {name:<26} {plan['Execution Time']:7.2f} ms  " + "; ".join(parts)
            + ("  <<< " + ", ".join(flags) if flags else "  (bounded)"))


def explains(url: str, document: str, chunking: dict[str, int]) -> list[str]:
    import uuid

    doc = uuid.UUID(document)
    checks = [
        ("stage_counts", {"tenant": TENANT}), ("count_documents", {"tenant": TENANT, "stage": None}),
        ("count_documents", {"tenant": TENANT, "stage": "complete"}),
        ("chunking_census", {"tenant": TENANT, "chunking": json.dumps(chunking)}),
        ("queue_depth", {"tenant": TENANT}), ("queue_depth", {"tenant": SMALL}), ("queue_depth", {"tenant": None}),
        ("recent_documents", {"tenant": TENANT, "limit": 20}), ("recent_errors", {"tenant": TENANT, "limit": 10}),
        ("throughput", {"tenant": TENANT, "buckets": 12, "width": 300}), ("costs_summary", {"tenant": TENANT}),
        ("metrics_stages", {}), ("metrics_stage_durations", {}), ("metrics_ledger", {}),
        ("list_documents", {"tenant": TENANT, "stage": None, "after_created": None, "after_id": None,
                            "limit": 51}),
        ("list_documents_in_stage", {"tenant": TENANT, "stage": "complete", "after_created": None,
                                     "after_id": None, "limit": 51}),
        ("document_detail", {"tenant": TENANT, "document_id": doc}),
        ("document_events", {"tenant": TENANT, "document_id": doc, "limit": 20}),
    ]
    with psycopg.connect(url) as conn:
        return [explain(conn, name, params) for name, params in checks]


async def time_calls(fn: Any, calls: int) -> tuple[float, float]:
    """p50 and p95 in ms of ``calls`` awaits of ``fn()``, after one to warm up."""
    await fn()
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        await fn()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took), percentile(took, 0.95)


def measure(settings: Settings, calls: int) -> tuple[list[tuple[str, float, float]], str]:
    """Status through the operations layer; the API's answers in-process (ASGI, no socket)."""
    import httpx

    from ingestflow.api.app import create_app
    from ingestflow.operations import documents, keys

    async def main() -> tuple[list[tuple[str, float, float]], str]:
        rows: list[tuple[str, float, float]] = []
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            rt = app.state.runtime
            for tenant in (TENANT, SMALL):
                rows.append((f"status (tenant {tenant})",
                             *await time_calls(lambda t=tenant: documents.overview(rt, t), calls)))
            headers = {"Authorization": f"Bearer {await keys.create(rt.db, TENANT)}"}
            async with rt.db.pool.connection() as conn:
                document = str((await (await conn.execute(
                    "SELECT id FROM documents WHERE tenant = %s AND stage = 'complete' LIMIT 1",
                    (TENANT,))).fetchone())[0])
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
                async def get(path: str) -> None:
                    response = await client.get(path, headers=headers)
                    assert response.status_code == 200, (path, response.status_code, response.text[:200])

                for label, path in (("floor: GET /readyz (one database ping)", "/readyz"),
                                    ("dashboard (GET /v1/dashboard)", "/v1/dashboard"), ("/metrics", "/metrics"),
                                    ("documents page (GET /v1/documents)", "/v1/documents?limit=50"),
                                    ("documents page, stage=complete", "/v1/documents?limit=50&stage=complete"),
                                    ("document detail (GET /v1/documents/ID)", f"/v1/documents/{document}")):
                    rows.append((label, *await time_calls(lambda p=path: get(p), calls)))
        return rows, document

    return asyncio.run(main())


TALLY_TRIGGERS = ("documents_tally_insert", "documents_tally_update", "documents_tally_delete"), \
    ("jobs_tally_insert", "jobs_tally_update", "jobs_tally_delete"), ("events_tally_insert", "events_tally_delete"), \
    ("ledger_tally",)


def write_cost(rounds: int, docs: int) -> list[tuple[bool, float]]:
    """What the tally triggers cost ingest: ``docs`` one-chunk documents ingested in
    process (MOCK), ``rounds`` times with the triggers disabled and enabled in turn, each
    round a fresh database; (triggers on, seconds) per round."""
    from ingestflow.operations.documents import submit_paths
    from ingestflow.runtime import open_runtime
    from support import small_docs

    out = []
    with temporary_home() as tmp:
        base = Settings(ingestflow_home=tmp / "home", log_level="WARNING")
        for r in range(rounds * 2):
            folder = tmp / f"docs{r}"
            small_docs(folder, docs, first=r * docs)
            url = fresh_database(base)
            settings = base.model_copy(update={"database_url": SecretStr(url)})
            on = r % 2 == 1
            from ingestflow.store.database import migrate

            migrate(url)
            if not on:
                with psycopg.connect(url) as conn:
                    for table, names in zip(("documents", "jobs", "events", "ledger"), TALLY_TRIGGERS, strict=True):
                        for name in names:
                            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {name}")

            async def ingest(settings: Settings = settings, folder: Path = folder) -> float:
                async with open_runtime(settings) as rt:
                    started = time.perf_counter()
                    submitted = await submit_paths(rt, [folder], "bench")
                    await rt.drain([s.registration.document_id for s in submitted if s.registration]).run()
                    return time.perf_counter() - started

            out.append((on, asyncio.run(ingest())))
    return out


def run(n: int, *, calls: int = 50, home: Path | None = None) -> list[str]:
    """Load N chunks and N jobs into a fresh database, time each count-reading answer and
    EXPLAIN its queries; returns the lines printed."""
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with contextlib.ExitStack() as stack:
        home = home or stack.enter_context(temporary_home()) / "home"
        stack.callback(embedded.stop_all)
        base = Settings(ingestflow_home=home, log_level="WARNING", mock_embedding_dimensions=16)
        url = fresh_database(base)
        settings = base.model_copy(update={"database_url": SecretStr(url)})
        from ingestflow.store.database import migrate

        migrate(url)
        from ingestflow.runtime import open_runtime

        async def chunking() -> dict[str, int]:
            async with open_runtime(settings) as rt:
                return rt.chunking().signature

        signature = asyncio.run(chunking())
        seconds = load(url, n, signature)
        with psycopg.connect(url) as conn:
            sizes = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                     for t in ("documents", "chunks", "jobs", "events", "ledger")}
        say(f"counts at {n:,}: " + ", ".join(f"{t} {v:,}" for t, v in sizes.items()) + f" (loaded in {seconds:.0f} s)")
        rows, document = measure(settings, calls)
        say(f"{'answer':<42} {'p50 ms':>8} {'p95 ms':>8}  target p95 <= {TARGET_MS:.0f} ms")
        for label, p50, p95 in rows:
            verdict = "" if label.startswith("floor") else "met" if p95 <= TARGET_MS else "NOT MET"
            say(f"{label:<42} {p50:8.1f} {p95:8.1f}  {verdict}")
        say("EXPLAIN (ANALYZE, BUFFERS) of the queries they run (rows read by each scan):")
        for line in explains(url, document, signature):
            say(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="chunks, and jobs")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--home", type=Path, help="keep the home (and its database server) here")
    parser.add_argument("--write-cost", type=int, metavar="DOCS",
                        help="instead: ingest DOCS documents 3 times each with the tally triggers off and on")
    args = parser.parse_args()
    if args.write_cost:
        took = write_cost(3, args.write_cost)
        off = [t for on, t in took if not on]
        on = [t for on, t in took if on]
        print(f"ingest of {args.write_cost} one-chunk documents (MOCK, in process), 3 rounds interleaved: "
              f"triggers off {statistics.median(off):.2f} s, on {statistics.median(on):.2f} s (medians; "
              f"{statistics.median(on) / statistics.median(off):.2f}x)")
        return
    run(args.n, calls=args.calls, home=args.home)


if __name__ == "__main__":
    main()
