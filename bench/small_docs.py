"""Many small documents: what batching buys (issue 9).

    .venv/bin/python bench/small_docs.py [--docs 1000 10000] [--runs 3]
                                         [--real [--real-docs 200 10000] [--warm]] [--speedup-only]

For N one-paragraph Markdown documents on a fresh database of the embedded server:
- MOCK in-process (submit + an in-process worker until done): wall, docs/s, database
  transactions per document (pg_stat_database), embedding requests vs the minimum; cold
  (the tokenizer, parsers and embedder load during the run) and warm (loaded first, as
  in a running worker or API server); the split of the wall: the submit (reading,
  hashing, registering) and each stage of the worker (from the pipeline's events);
- the same texts through LangChain's ``PGVector.add_documents`` (bench/langchain_baseline.py,
  when langchain-postgres is installed) on a fresh database of the same server, interleaved
  with our cold runs, and our in-process wall against it (goal <= 0.5x, issue 29);
- MOCK through the CLI (`ingestflow ingest FOLDER` in a subprocess);
- with --real: REAL mode against the fake OpenAI answering each request in 200 ms (RPM and
  TPM at a low tier's 3,000 and 1,000,000; spend limits lifted): `ingestflow ingest FOLDER
  --no-wait`, then 1 and then 4 `ingestflow worker` processes (--warm: started and warm
  before the submit) until every document is complete: wall from the submit to the last
  document complete, docs/s, transactions per document, embedding requests vs the minimum
  ceil(chunks / 2048), and the wall's parts: the submit, the workers' start-up, the time
  after the submit; inputs per request and failed documents (`--docs` with no number
  skips the MOCK runs);
- with --real (or only them, --speedup-only): 1, 2 and 4 worker processes sharing one
  queue of 400 documents against the same 200 ms provider, and their speed-up (issue 30.5);
(The Batch API and the model switch have their own benchmark, bench/backfill.py.)
Figures are printed; nothing is asserted (targets live in the README).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from pydantic import SecretStr

from ingestflow.config import Settings
from ingestflow.operations.documents import submit_paths
from ingestflow.runtime import open_runtime
from ingestflow.testing.fake_openai import FakeOpenAI
from support import count_requests, fresh_database, small_docs, stage_seconds, temporary_home

KEY = "sk-bench-small-docs"
REQUEST_SECONDS = 0.2  # how long the fake takes to answer each embeddings request


def commits(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


def in_process(settings: Settings, folder: Path, *, warm: bool = False) -> dict:
    """``warm``: the process has loaded the tokenizer, parsers and embedder first, as a
    worker or API server has (otherwise their loading is part of the wall)."""
    async def main() -> dict:
        async with open_runtime(settings, pool_size=8) as rt:
            if warm:
                rt.warm_up()
            counting = count_requests(rt)
            url = rt.db.url
            before = commits(url)
            started = time.perf_counter()
            submitted = await submit_paths(rt, [folder], "bench")
            submit = time.perf_counter() - started
            worker = rt.drain([s.registration.document_id for s in submitted if s.registration])
            await worker.run()
            wall = time.perf_counter() - started
            after = commits(url)
            with psycopg.connect(url) as conn:
                done, chunks = conn.execute("SELECT count(*) FILTER (WHERE stage = 'complete'),"
                                            " (SELECT count(*) FROM chunks) FROM documents").fetchone()
            inputs = counting.inner.spec.max_inputs_per_request or chunks
            return {"wall": wall, "parts": {"submit": submit, **stage_seconds(url)}, "docs": done, "chunks": chunks,
                    "requests": counting.calls,
                    "minimum": math.ceil(chunks / min(inputs, settings.embedding_batch_size)),
                    "transactions": after - before}

    return asyncio.run(main())


def langchain_add_documents(url: str, folder: Path, dimensions: int) -> float | None:
    """bench/langchain_baseline.py's seconds on the same texts; None without langchain-postgres."""
    if importlib.util.find_spec("langchain_postgres") is None:
        return None
    done = subprocess.run([sys.executable, "-P", str(Path(__file__).with_name("langchain_baseline.py")), url,
                           str(folder), str(dimensions)], capture_output=True, text=True, check=True)
    return float(done.stdout)


def through_cli(settings: Settings, folder: Path) -> float:
    env = {**os.environ, "DATABASE_URL": settings.database_url.get_secret_value(),
           "INGESTFLOW_HOME": str(settings.ingestflow_home), "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ingestflow", "ingest", str(folder)], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - started


def start_workers(n: int, env: dict[str, str], logs: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        with open(logs / f"worker{i}.log", "wb") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "ingestflow", "worker"], env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
    for i, proc in enumerate(procs):  # started: migrated, tokenizer and parsers loaded
        while "worker_started" not in (logs / f"worker{i}.log").read_text():
            if proc.poll() is not None:
                raise RuntimeError((logs / f"worker{i}.log").read_text()[-2000:])
            time.sleep(0.05)
    return procs


def until_finished(conn: psycopg.Connection, n: int) -> tuple[int, int, int]:
    """Poll until ``n`` documents are complete or failed: (complete, failed, polls)."""
    polls = 0
    while True:
        polls += 1
        done, failed = conn.execute("SELECT count(*) FILTER (WHERE stage = 'complete'),"
                                    " count(*) FILTER (WHERE stage = 'failed') FROM documents").fetchone()
        if done + failed >= n:
            return done, failed, polls
        time.sleep(0.05)


def with_workers(settings: Settings, folder: Path, workers: int, logs: Path, warm: bool) -> dict[str, float]:
    """REAL mode: `ingest --no-wait`, then worker processes (``warm``: started before the
    submit) until every document is complete."""
    url = settings.database_url.get_secret_value()
    n = sum(1 for _ in folder.iterdir())
    with FakeOpenAI(api_key=KEY, slow_seconds=REQUEST_SECONDS) as fake:  # a realistic tier's RPM and TPM
        fake.faults.set_rate(1.0, ["slow"])
        env = {**os.environ, "DATABASE_URL": url, "INGESTFLOW_HOME": str(settings.ingestflow_home),
               "SERVICE_MODE": "REAL", "OPENAI_API_KEY": KEY, "OPENAI_API_URL": fake.url,
               "DAILY_COST_LIMIT_OPENAI": "none", "HOURLY_RATE_LIMIT_OPENAI": "none", "LOG_LEVEL": "INFO"}
        procs = start_workers(workers, env, logs) if warm else []
        try:
            before = commits(url)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ingestflow", "ingest", "--no-wait", str(folder)],
                           env={**env, "LOG_LEVEL": "WARNING"}, check=True, capture_output=True)
            submit = time.perf_counter() - started
            procs = procs or start_workers(workers, env, logs)
            startup = 0.0 if warm else time.perf_counter() - started - submit
            with psycopg.connect(url, autocommit=True) as conn:
                done, failed, polls = until_finished(conn, n)
                wall = time.perf_counter() - started
                chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=60)
        return {"wall": wall, "submit": submit, "startup": startup, "docs": done, "failed": failed,
                "chunks": chunks, "requests": fake.stats["requests"], "inputs": fake.stats["inputs"],
                "minimum": math.ceil(chunks / 2048), "transactions": commits(url) - before - polls}


# -- worker processes sharing a queue: speed-up with 1, 2 and 4 (issue 30.5) --------------
SPEEDUP_DOCS = 400
SPEEDUP_INPUTS = 8  # EMBEDDING_BATCH_SIZE: a worker's share takes many 200 ms requests
SPEEDUP_WORKERS = (1, 2, 4)


def worker_speedups(base: Settings, work: Path, runs: int) -> None:
    """REAL mode against the fake OpenAI answering each request in 200 ms: 1, 2 and 4
    `ingestflow worker` processes of one slot each, started and alive before
    `ingest --no-wait` queues the documents; the wall from the submit's end to the last
    document complete, and the speed-up over one worker (target >= 0.8 x N until the
    provider's rate limit binds). Requests carry SPEEDUP_INPUTS inputs, so that the work
    is the provider's waiting, which workers can share, not this machine's two cores."""
    folder = work / "speedup"
    small_docs(folder, SPEEDUP_DOCS)
    walls: dict[int, float] = {}
    for n in SPEEDUP_WORKERS:
        results = [_speedup_run(base.model_copy(update={"database_url": SecretStr(fresh_database(base))}),
                                folder, n, work) for _ in range(runs)]
        walls[n] = statistics.median(r["wall"] for r in results)
        print(f"{f'REAL, {SPEEDUP_DOCS} docs, {n} worker process(es)':<34} {walls[n]:7.2f} s after the submit  "
              f"speed-up {walls[1] / walls[n]:.2f} x (target >= {0.8 * n:.1f})  "
              f"claims per worker {results[0]['claims']}  requests {results[0]['requests']}  "
              f"failed {sum(r['failed'] for r in results)}  [runs {_walls(r['wall'] for r in results)}]")


def _speedup_run(settings: Settings, folder: Path, workers: int, logs: Path) -> dict[str, object]:
    url = settings.database_url.get_secret_value()
    with FakeOpenAI(api_key=KEY, slow_seconds=REQUEST_SECONDS) as fake:
        fake.faults.set_rate(1.0, ["slow"])
        env = {**os.environ, "DATABASE_URL": url, "INGESTFLOW_HOME": str(settings.ingestflow_home),
               "SERVICE_MODE": "REAL", "OPENAI_API_KEY": KEY, "OPENAI_API_URL": fake.url,
               "DAILY_COST_LIMIT_OPENAI": "none", "HOURLY_RATE_LIMIT_OPENAI": "none", "LOG_LEVEL": "INFO",
               "WORKER_CONCURRENCY": "1", "EMBEDDING_BATCH_SIZE": str(SPEEDUP_INPUTS)}
        procs = start_workers(workers, env, logs)
        try:
            subprocess.run([sys.executable, "-m", "ingestflow", "ingest", "--no-wait", str(folder)],
                           env={**env, "LOG_LEVEL": "WARNING"}, check=True, capture_output=True)
            started = time.perf_counter()
            with psycopg.connect(url, autocommit=True) as conn:
                _, failed, _ = until_finished(conn, SPEEDUP_DOCS)
                wall = time.perf_counter() - started
                claims = sorted(n for (n,) in conn.execute(
                    "SELECT count(*) FROM events WHERE kind = 'claimed'"
                    " GROUP BY split_part(detail->>'owner', '/', 1)").fetchall())
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=60)
        return {"wall": wall, "failed": failed, "claims": claims, "requests": fake.stats["requests"]}
# -- end of the worker speed-ups --------------------------------------------------------


def report(label: str, runs: list[dict[str, float]]) -> None:
    wall = statistics.median(r["wall"] for r in runs)
    r = runs[0]
    print(f"{label:<34} {wall:7.2f} s  {r['docs'] / wall:8.0f} docs/s  "
          f"transactions/doc {r['transactions'] / max(1, r['docs']):.3f}  "
          f"requests {r['requests']} (minimum {r['minimum']})  [runs {_walls(x['wall'] for x in runs)}]")


def split(runs: list[dict]) -> None:
    """Where the in-process wall went (medians): the submit, then each stage's seconds from
    the pipeline's events, summed over the worker's slots (they overlap, so their sum may
    exceed the wall)."""
    parts = dict.fromkeys(p for r in runs for p in r["parts"])
    medians = {p: statistics.median(r["parts"].get(p, 0.0) for r in runs) for p in parts}
    print(f"{'':<34} of which " + ", ".join(f"{p} {v:.2f} s" for p, v in medians.items()))


def _walls(walls: object) -> str:
    return ", ".join(f"{w:.2f}" for w in walls)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--real", action="store_true", help="also REAL mode with 1 and 4 worker processes")
    parser.add_argument("--real-docs", type=int, nargs="+", default=[200, 10000])
    parser.add_argument("--warm", action="store_true", help="REAL: start the workers before the submit")
    parser.add_argument("--speedup-only", action="store_true",
                        help="only the worker speed-ups (which --real also prints)")
    args = parser.parse_args()
    with temporary_home() as tmp:
        work = Path(tmp)
        base = Settings(ingestflow_home=work / "home", log_level="WARNING")
        if args.real or args.speedup_only:
            worker_speedups(base, work, args.runs)
        if args.speedup_only:
            return
        for n in args.docs:
            folder = work / f"docs{n}"
            small_docs(folder, n)
            langchain = []
            for warm in (False, True):
                runs = []
                for _ in range(args.runs):
                    settings = base.model_copy(update={"database_url": SecretStr(fresh_database(base))})
                    runs.append(in_process(settings, folder, warm=warm))
                    if not warm:  # interleaved with ours: the same load
                        langchain.append(langchain_add_documents(fresh_database(base), folder,
                                                                 base.mock_embedding_dimensions))
                report(f"MOCK in-process{', warm' if warm else ''}, {n} docs", runs)
                split(runs)
                if not warm and None not in langchain:
                    theirs = statistics.median(langchain)  # type: ignore[type-var]
                    print(f"{f'LangChain add_documents, {n} docs':<34} {theirs:7.2f} s  [runs {_walls(langchain)}]  "
                          f"ours / LangChain {statistics.median(r['wall'] for r in runs) / theirs:.2f}x (goal <= 0.5x)")
            walls = []
            for _ in range(args.runs):
                settings = base.model_copy(update={"database_url": SecretStr(fresh_database(base))})
                walls.append(through_cli(settings, folder))
            print(f"{f'MOCK through the CLI, {n} docs':<34} {statistics.median(walls):7.2f} s  "
                  f"{n / statistics.median(walls):8.0f} docs/s  [runs {_walls(walls)}]")
        for n in args.real_docs if args.real else []:
            folder = work / f"docs{n}"
            small_docs(folder, n)
            for workers in (1, 4):
                runs = []
                for _ in range(args.runs):
                    settings = base.model_copy(update={"database_url": SecretStr(fresh_database(base))})
                    runs.append(with_workers(settings, folder, workers, work, args.warm))
                report(f"REAL, {n} docs, {workers} worker(s)", runs)
                phases = {k: statistics.median(x[k] for x in runs) for k in ("submit", "startup")}
                print(f"{'':<34} of which submit {phases['submit']:.2f} s, worker start-up {phases['startup']:.2f} s,"
                      f" after the submit {statistics.median(x['wall'] - x['submit'] for x in runs):.2f} s  "
                      f"inputs/request {runs[0]['inputs'] / max(1, runs[0]['requests']):.0f}  "
                      f"failed {sum(x['failed'] for x in runs)}  [requests {', '.join(str(x['requests']) for x in runs)}]")


if __name__ == "__main__":
    main()
