"""Rate-limit benchmark: worker processes embedding against a TPM-limited fake OpenAI.

    .venv/bin/python bench/rate_limits.py [--tpm 40000] [--workers 3] [--tokens 100000]

The fake enforces a tokens-per-minute limit over a sliding minute, like OpenAI; ingestflow's
shared limiter is set to the same limit. Prints the achieved tokens/min as a share of the
limit (median of the sliding-minute windows while work was queued), the share of requests
answered 429, and requests used against the minimum the per-request limits allow.
Targets: >= 90% of the limit, <= 1% 429s, requests == minimum.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from ingestflow.config import Settings
from ingestflow.store.database import database_url, migrate
from ingestflow.testing.fake_openai import FakeOpenAI

KEY = "sk-bench"
WORDS = "harbour ship crane tide cargo pilot dock berth manifest weather channel buoy".split()


def corpus(folder: Path, total_tokens: int, doc_tokens: int) -> None:
    rng = random.Random(3)
    folder.mkdir()
    for i in range(max(1, total_tokens // doc_tokens)):
        words = [rng.choice(WORDS) for _ in range(doc_tokens)]
        paragraphs = [" ".join(words[j:j + 60]) + "." for j in range(0, len(words), 60)]
        (folder / f"log-{i:03}.md").write_text(f"# Log {i}\n\n" + "\n\n".join(paragraphs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tpm", type=int, default=40_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--doc-tokens", type=int, default=4_000)
    parser.add_argument("--home", type=Path, default=Path(".ingestflow"))
    args = parser.parse_args()

    server_url = database_url(Settings(ingestflow_home=args.home))
    name = f"bench_rl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(server_url, dbname=name)
    migrate(url)

    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(api_key=KEY, tpm=args.tpm) as fake:
        folder = Path(tmp) / "corpus"
        corpus(folder, args.tokens, args.doc_tokens)
        env = {**os.environ, "DATABASE_URL": url, "INGESTFLOW_HOME": str(args.home), "SERVICE_MODE": "REAL",
               "OPENAI_API_KEY": KEY, "OPENAI_API_URL": fake.url, "RATE_LIMIT_TPM_OPENAI": str(args.tpm),
               "POLL_INTERVAL_SECONDS": "0.5", "LOG_LEVEL": "WARNING"}
        subprocess.run([sys.executable, "-m", "ingestflow", "ingest", "--no-wait", str(folder)], env=env,
                       check=True, capture_output=True)
        started = time.monotonic()
        workers = [subprocess.Popen([sys.executable, "-m", "ingestflow", "worker"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(args.workers)]
        try:
            with psycopg.connect(url) as conn:
                while conn.execute("SELECT count(*) FROM documents WHERE stage <> 'complete'").fetchone()[0]:
                    time.sleep(0.5)
                    conn.commit()
                chunk_tokens = conn.execute(
                    "SELECT document_id, array_agg(token_count ORDER BY ordinal) FROM chunks GROUP BY 1").fetchall()
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=30)
        elapsed = time.monotonic() - started

    admitted = sorted(fake.admitted)
    total = sum(t for _, t in admitted)
    first, last = admitted[0][0], admitted[-1][0]
    windows = [sum(t for at, t in admitted if end - 60 < at <= end) / args.tpm
               for end in [first + 60 + i for i in range(int(last - first - 60) + 1)]]
    minimum = 0
    for _, counts in chunk_tokens:
        capped = 0
        tokens = 0
        for n in counts:  # the same packing rule, with the TPM cap, counted independently
            if tokens and tokens + n > min(args.tpm, 285_000):
                capped += 1
                tokens = 0
            tokens += n
        minimum += capped + 1 if counts else 0
    requests = fake.stats["requests"]
    print(f"corpus        {len(chunk_tokens)} documents, {total:,} tokens, {args.workers} workers, TPM limit {args.tpm:,}")
    print(f"elapsed       {elapsed:.1f} s")
    if windows:
        print(f"throughput    median sliding-minute use {100 * statistics.median(windows):.1f}% of the limit"
              f" (min {100 * min(windows):.1f}%, max {100 * max(windows):.1f}%; target >= 90%)")
    else:
        print("throughput    the run was shorter than a minute: raise --tokens")
    print(f"429s          {fake.stats['status_429']} of {requests} requests = "
          f"{100 * fake.stats['status_429'] / max(1, requests):.2f}% (target <= 1%)")
    print(f"requests      {fake.stats['status_200']} successful vs minimum {minimum} (target: equal)")


if __name__ == "__main__":
    main()
