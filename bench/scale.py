"""Issue 30's scale figures in one run: search against bare pgvector at each size, then the
backfill and count benchmarks (their ``run(n) -> list[str]``).

    .venv/bin/python bench/scale.py [--sizes 100000,1000000] [--dims 384] [--queries 200]
        [--clients 1,8] [--rounds 4] [--no-hybrid] [--build-memory 0] [--backfill N] [--counts N]

Each part prints its own lines (search: see bench/search_overhead.py); ``--backfill`` and
``--counts`` give their size (default: the largest of ``--sizes``; 0 skips one). The
graph-parameter sweep of issue 16 is bench/hnsw_sweep.py. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import backfill
import counts
import search_overhead

from ingestflow.config import Settings


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=_ints, default=[100_000, 1_000_000], help="vectors, one run each")
    parser.add_argument("--dims", type=int, default=384, help="dimensions of the vectors (the local model's)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", type=_ints, default=None, help="hnsw.ef_search values; default SEARCH_HNSW_EF_SEARCH")
    parser.add_argument("--clients", type=_ints, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=4, help="alternating passes of each side over the queries")
    parser.add_argument("--no-hybrid", action="store_true", help="skip mode hybrid (information only)")
    parser.add_argument("--build-memory", type=int, default=0, help="INDEX_BUILD_MEMORY_MB; 0: sized to the space")
    parser.add_argument("--backfill", type=int, default=None, help="chunks of bench/backfill.py's run; 0 skips it")
    parser.add_argument("--counts", type=int, default=None, help="size of bench/counts.py's run; 0 skips it")
    args = parser.parse_args()

    ef = args.ef or [Settings().search_hnsw_ef_search]
    for n in args.sizes:
        began = time.perf_counter()
        print(f"== search against bare pgvector, {n:,} vectors", flush=True)
        for line in search_overhead.run(n, dims=args.dims, queries=args.queries, ef=ef, clients=args.clients,
                                        rounds=args.rounds, hybrid=not args.no_hybrid,
                                        build_memory=args.build_memory):
            print(line, flush=True)
        print(f"({time.perf_counter() - began:.0f} s)", flush=True)
    for module, size in ((backfill, args.backfill), (counts, args.counts)):
        size = max(args.sizes) if size is None else size
        if not size:
            continue
        print(f"== bench/{module.__name__}.py, {size:,}", flush=True)
        module.run(size)  # prints its lines as it goes


if __name__ == "__main__":
    main()
