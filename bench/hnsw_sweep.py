"""The HNSW graph at scale on one Postgres (issue 16): load, build, recall and latency per ef_search.

    PYTHONPATH=src .venv/bin/python bench/hnsw_sweep.py [--vectors 100000] [--small-tenants 100]
        [--small-size 100] [--spread 2.0] [--queries 100] [--ef 40,64,100,200] [--extra 5000]
        [--ivfflat-lists 1000 --probes 1,4,16] [--hnsw-build 16,200] [--shared-buffers 0,8192]

On a fresh database of the embedded server (or DATABASE_URL's), in the project's schema
and through its own write path (documents.register, chunks.replace, vectors.write_vectors,
documents.make_current; 100 chunks a document, 1,000 vectors a transaction):
``--vectors`` clustered 1536-d unit vectors (2,000 clusters: neighbours are close, and the
graph has to find the right cluster and the right points in it) in one space, held by one
large tenant and ``--small-tenants`` small ones of ``--small-share`` of the vectors each.
Prints, one section each:
- load: vectors/s without an index (the last ``--extra`` loaded), the HNSW build by
  store/vectors.build_indexes (seconds, maintenance_work_mem; ``--hnsw-build`` sets its m
  and ef_construction, else the settings' defaults; with ``--ivfflat-lists``, a pgvector
  IVFFlat index instead, for comparison, searched per ``--probes``), then ``--extra`` more
  vectors with the index present: vectors/s and the ratio;
- bytes per vector: the embeddings table (heap + TOAST) and its indexes;
- the large tenant's search through store/vectors.search, per ef_search: recall@10 against
  exact float32 search (numpy) over the tenant's vectors, p50/p95 with 1 and 8 concurrent
  clients (each its own connection), and exact search (no graph) for comparison; with
  ``--shared-buffers``, the sweep once per shared_buffers size (MB; 0 the server's own),
  the server restarted in between and the space's indexes read into its buffers
  (pg_prewarm), and after the first size ``--extra`` more vectors loaded with the index;
- a small tenant's search: hits returned (k wanted), recall@10 and p50/p95, by the graph
  (SEARCH_EXACT_MAX_CHUNKS=0) and by the default strategy (exact under the threshold).
Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, replace

import numpy as np
import psycopg
from psycopg.conninfo import make_conninfo

from ingestflow.config import Settings
from ingestflow.store import chunks, documents, embedded, vectors
from ingestflow.store.chunks import NewChunk
from ingestflow.store.database import database_url, migrate
from ingestflow.store.documents import NewFile
from ingestflow.store.files import PostgresFileStore
from ingestflow.store.statistics import refresh
from support import fresh_database, temporary_home

DIMS, K, CLUSTERS = 1536, 10, 2000
PER_DOCUMENT, PER_TRANSACTION = 100, 1000
LARGE = "large"
DEFAULTS = Settings()
PLAN = vectors.SearchPlan(dense=True, keyword=False, config="english", candidates=K, vector_weight=0.5, vector_weight_min=0.5, heading_weight=1.0,
                          max_share=0.5, max_rows=300, ef_search=DEFAULTS.search_hnsw_ef_search,
                          max_scan_tuples=DEFAULTS.search_hnsw_max_scan_tuples,
                          exact_max=DEFAULTS.search_exact_max_chunks, rerank=DEFAULTS.search_binary_rerank)


class Corpus:
    """Clustered unit vectors, drawn batch by batch (1M x 1536 float32 would be 6 GB),
    with a running exact top ``K`` for each query set (float32, numpy)."""

    def __init__(self, spread: float, seed: int = 7) -> None:
        self.spread = spread
        self.rng = np.random.default_rng(seed)
        self.centres = self.rng.standard_normal((CLUSTERS, DIMS)).astype(np.float32)

    def draw(self, count: int) -> np.ndarray:
        points = self.centres[self.rng.integers(0, CLUSTERS, count)]
        points = points + self.spread * self.rng.standard_normal((count, DIMS), dtype=np.float32)
        return points / np.linalg.norm(points, axis=1, keepdims=True)


@dataclass
class Truth:
    """The exact top ``K`` of each query among the vectors seen so far."""

    queries: np.ndarray
    scores: np.ndarray
    ids: np.ndarray

    @classmethod
    def of(cls, queries: np.ndarray) -> Truth:
        return cls(queries, np.full((len(queries), K), -np.inf, np.float32), np.zeros((len(queries), K), object))

    def see(self, ids: list, batch: np.ndarray) -> None:
        scores = np.concatenate([self.scores, self.queries @ batch.T], axis=1)
        names = np.concatenate([self.ids, np.broadcast_to(np.array(ids, object), (len(self.queries), len(ids)))],
                               axis=1)
        best = np.argpartition(-scores, K, axis=1)[:, :K]
        self.scores = np.take_along_axis(scores, best, axis=1)
        self.ids = np.take_along_axis(names, best, axis=1)


async def load(conn: psycopg.AsyncConnection, corpus: Corpus, space_id: int, tenant: str, count: int,
               first: int, truths: list[Truth]) -> list[float]:
    """``count`` vectors for ``tenant`` through the write path; vectors/s per transaction."""
    rates = []
    for start in range(first, first + count, PER_TRANSACTION):
        n = min(PER_TRANSACTION, first + count - start)
        batch = corpus.draw(n)
        began = time.perf_counter()
        async with conn.transaction():
            names = [f"{tenant}-{start + i:08}.md" for i in range(0, n, PER_DOCUMENT)]
            files = [NewFile(name, name.encode(), "text/markdown") for name in names]
            registered = await documents.register(conn, tenant=tenant, files=files, store=PostgresFileStore())
            ids = [r.document_id for r in registered]
            written = {doc: [NewChunk(o, text, text, 2, {}) for o in range(min(PER_DOCUMENT, n - i))
                             if (text := f"passage {start + i + o}")]
                       for doc, i in zip(ids, range(0, n, PER_DOCUMENT), strict=True)}
            await chunks.replace(conn, written, search_config="english")
            chunk_ids = [documents.chunk_id(doc, c.ordinal) for doc, rows in written.items() for c in rows]
            await vectors.write_vectors(conn, chunk_ids, space_id, batch)
            await documents.lock_sources(conn, [(tenant, name) for name in names])
            await documents.make_current(conn, ids)
        rates.append(n / (time.perf_counter() - began))
        for truth in truths:
            truth.see(chunk_ids, batch)
    return rates


async def timed_search(conn: psycopg.AsyncConnection, plan: vectors.SearchPlan, space_id: int, tenant: str,
                       q: np.ndarray) -> tuple[list, float]:
    began = time.perf_counter()
    hits = await vectors.search(conn, plan, space_id=space_id, dimensions=DIMS, query_vector=q,
                                question="passage", tenant=tenant, k=K)
    return [h["chunk_id"] for h in hits], (time.perf_counter() - began) * 1000


async def searches(url: str, plan: vectors.SearchPlan, space_id: int, work: list[tuple[str, np.ndarray]],
                   clients: int) -> tuple[list[list], list[float]]:
    """Each (tenant, query)'s hits in order, and every search's milliseconds, run by
    ``clients`` connections at once."""
    found: list[list] = [[] for _ in work]
    ms: list[float] = []
    todo = iter(range(len(work)))

    async def client() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await timed_search(conn, plan, space_id, *work[0])  # warm: type lookups, first plan
            for i in todo:
                found[i], took = await timed_search(conn, plan, space_id, *work[i])
                ms.append(took)

    await asyncio.gather(*(client() for _ in range(clients)))
    return found, ms


def recall(found: list[list], truth: Truth) -> float:
    return float(np.mean([len(set(got) & set(want)) / K for got, want in zip(found, truth.ids.tolist(), strict=True)]))


def percentiles(ms: list[float]) -> str:
    return f"p50 {statistics.median(ms):7.1f} ms  p95 {np.percentile(ms, 95):7.1f} ms"


async def fresh_statistics(url: str) -> None:
    """What a worker does before each batch (store/statistics.py): the bench loads through
    the store's functions, not the workers, and a search planned on statistics that lag
    the load (chunks and documents) took twice as long (measured at 5k vectors)."""
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        await refresh(conn)


def sizes(url: str) -> tuple[int, float, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE embeddings")
        n, table, indexes = conn.execute(
            "SELECT (SELECT count(*) FROM embeddings), sum(pg_table_size(relid)), sum(pg_indexes_size(relid))"
            " FROM (SELECT relid FROM pg_partition_tree('embeddings') UNION SELECT 'embeddings'::regclass) r"  # partitions or not
            ).fetchone()
    return n, table / n, indexes / n


def restart(settings: Settings, url: str, shared_buffers_mb: int) -> str:
    """Restart the embedded server with ``shared_buffers_mb`` (0: its default); the database's
    URL after the restart (the port can change)."""
    with psycopg.connect(url, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{int(shared_buffers_mb)}MB'" if shared_buffers_mb
                     else "ALTER SYSTEM RESET shared_buffers")
    embedded.stop_all()
    return make_conninfo(database_url(settings), dbname=dbname)


async def scenario(settings: Settings, url: str, args: argparse.Namespace) -> None:
    corpus = Corpus(args.spread)
    small_size = args.small_size
    small = [f"small-{i:03}" for i in range(args.small_tenants)]
    large_size = args.vectors - small_size * len(small)
    large_truth = Truth.of(corpus.draw(args.queries))
    asked = small[:: max(1, len(small) // 20)][:20]  # 20 small tenants, 5 questions each
    small_truth = {t: Truth.of(corpus.draw(5)) for t in asked}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        space_id = await vectors.ensure_space(conn, "bench", "clustered", DIMS)
        began = time.perf_counter()
        for tenant in small:
            await load(conn, corpus, space_id, tenant, small_size, 0, [small_truth[tenant]] if tenant in small_truth else [])
        rates = await load(conn, corpus, space_id, LARGE, large_size - args.extra, 0, [large_truth])
        rates += await load(conn, corpus, space_id, LARGE, args.extra, large_size - args.extra, [large_truth])
        loaded_s = time.perf_counter() - began
    without = statistics.median(rates[-max(1, args.extra // PER_TRANSACTION):])
    print(f"{args.vectors:,} clustered {DIMS}-d vectors ({CLUSTERS} clusters) in one space: tenant {LARGE!r} "
          f"{large_size:,}, {len(small)} small tenants of {small_size:,}")
    print(f"load without an index: {loaded_s:.0f} s in all, {without:,.0f} vectors/s (median of the last "
          f"{args.extra:,})")

    m, ef_construction = args.hnsw_build
    policy = vectors.IndexPolicy(1, args.binary_min_dimensions, args.build_memory, m, ef_construction)
    binary = DIMS >= policy.binary_min_dimensions
    memory = args.build_memory or vectors.build_memory_mb(args.vectors, DIMS, binary, m)  # as build_indexes sizes it
    began = time.perf_counter()
    if args.ivfflat_lists:  # pgvector's other index, for comparison: not one the product builds
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"SET maintenance_work_mem = '{int(memory)}MB'")
            conn.execute(f"CREATE INDEX CONCURRENTLY ON embeddings_space_{int(space_id)} USING ivfflat "
                         f"((embedding::halfvec({DIMS})) halfvec_cosine_ops) WITH (lists = {args.ivfflat_lists})")
        kind = f"IVFFlat, {args.ivfflat_lists} lists"
    else:
        assert await vectors.build_indexes(url, policy) == [space_id]
        kind = ("HNSW, " + ("binary (sign bits, re-ranked)" if binary else "halfvec")
                + f", m {m}, ef_construction {ef_construction}")
    print(f"index build, {kind}: {time.perf_counter() - began:.0f} s (maintenance_work_mem {memory} MB)")

    extra_truth = Truth(large_truth.queries, large_truth.scores.copy(), large_truth.ids.copy())
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        with_index = statistics.median(await load(conn, corpus, space_id, LARGE, args.extra, large_size, [extra_truth]))
    large_truth = extra_truth
    print(f"load with the index: {with_index:,.0f} vectors/s, {with_index / without:.2f}x the rate without")
    n, table, indexes = sizes(url)
    await fresh_statistics(url)
    print(f"bytes per vector ({n:,} vectors): table {table:,.0f}, indexes {indexes:,.0f}, total {table + indexes:,.0f}")

    large_work = [(LARGE, q) for q in large_truth.queries]
    print(f"\ntenant {LARGE!r}, {len(large_work)} queries, k={K}")
    if args.ivfflat_lists:
        sweep = [(f"probes {p:4}", PLAN, p) for p in args.probes]
    else:
        sweep = [(f"ef_search {ef:4} rerank {rerank:2}", replace(PLAN, ef_search=ef, rerank=rerank), 0)
                 for ef in args.ef for rerank in (args.rerank if binary else [1])]
    for i, shared_buffers_mb in enumerate(args.shared_buffers):
        if len(args.shared_buffers) > 1:
            url = restart(settings, url, shared_buffers_mb)
        with psycopg.connect(url, autocommit=True) as conn:
            print(f"shared_buffers {conn.execute('SHOW shared_buffers').fetchone()[0]}")
            if shared_buffers_mb:  # they start empty: read the space's indexes in, or the sweep measures filling them
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")  # a contrib module
                conn.execute("SELECT pg_prewarm(indexrelid) FROM pg_index WHERE indrelid = %s::regclass",
                             (f"embeddings_space_{int(space_id)}",))
        if i:  # inserts too, at this size
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                rates = await load(conn, corpus, space_id, LARGE, args.extra, large_size + i * args.extra, [large_truth])
            print(f"load with the index: {statistics.median(rates):,.0f} vectors/s, "
                  f"{statistics.median(rates) / without:.2f}x the rate without")
            await fresh_statistics(url)
        for label, plan, probes in sweep:
            if probes:  # the database's default, so every client's new connection takes it
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"ALTER DATABASE {conn.info.dbname} SET ivfflat.probes = {int(probes)}")
            found, one = await searches(url, plan, space_id, large_work, 1)
            _, eight = await searches(url, plan, space_id, large_work, 8)
            print(f"{label}: recall@{K} {recall(found, large_truth):.3f}  "
                  f"1 client {percentiles(one)}  8 clients {percentiles(eight)}")
    found, ms = await searches(url, replace(PLAN, exact_max=10 ** 9), space_id, large_work[:5], 1)
    print(f"exact (no graph), 5 queries: {percentiles(ms)}")

    small_work = [(t, q) for t in asked for q in small_truth[t].queries]
    small_ids = np.concatenate([small_truth[t].ids for t in asked])
    print(f"\n{len(asked)} small tenants of {small_size:,} vectors, {len(small_work)} queries, k={K}")
    for label, plan in (("graph only (SEARCH_EXACT_MAX_CHUNKS=0)", replace(PLAN, exact_max=0)),
                        (f"default (exact up to {PLAN.exact_max:,} chunks)", PLAN)):
        found, ms = await searches(url, plan, space_id, small_work, 1)
        got = float(np.mean([len(f) for f in found]))
        hit = float(np.mean([len(set(f) & set(w)) / K for f, w in zip(found, small_ids.tolist(), strict=True)]))
        _, eight = await searches(url, plan, space_id, small_work, 8)
        print(f"{label}: {got:.1f} hits of {K}, recall@{K} {hit:.3f}, 1 client {percentiles(ms)}, "
              f"8 clients {percentiles(eight)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--small-tenants", type=int, default=100)
    parser.add_argument("--small-size", type=int, default=100, help="vectors of each small tenant")
    parser.add_argument("--spread", type=float, default=2.0, help="noise around each cluster centre")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",")], default=[40, 64, 100, 200])
    parser.add_argument("--extra", type=int, default=5000, help="vectors loaded with and without the index")
    parser.add_argument("--rerank", type=lambda s: [int(x) for x in s.split(",")], default=[4, 8],
                        help="SEARCH_BINARY_RERANK values, for a binary index")
    parser.add_argument("--binary-min-dimensions", type=int, default=DEFAULTS.hnsw_binary_min_dimensions,
                        help="HNSW_BINARY_MIN_DIMENSIONS: above 1536, the halfvec index")
    parser.add_argument("--ivfflat-lists", type=int, default=0,
                        help="build a pgvector IVFFlat index of this many lists instead of HNSW (comparison only)")
    parser.add_argument("--hnsw-build", type=lambda s: [int(x) for x in s.split(",")],
                        default=[DEFAULTS.hnsw_m, DEFAULTS.hnsw_ef_construction], metavar="M,EF_CONSTRUCTION",
                        help="HNSW_M and HNSW_EF_CONSTRUCTION of the index build")
    parser.add_argument("--probes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16],
                        help="ivfflat.probes values, with --ivfflat-lists")
    parser.add_argument("--build-memory", type=int, default=0,
                        help="INDEX_BUILD_MEMORY_MB of the index build; 0: sized to the space, as by default")
    parser.add_argument("--shared-buffers", type=lambda s: [int(x) for x in s.split(",")], default=[0],
                        help="the search sweep once per shared_buffers size (MB; 0: the server's default)")
    args = parser.parse_args()
    with temporary_home() as tmp:
        settings = Settings(ingestflow_home=tmp / "home", log_level="WARNING")
        url = fresh_database(settings)
        migrate(url)
        asyncio.run(scenario(settings, url, args))


if __name__ == "__main__":
    main()
