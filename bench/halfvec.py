"""What halfvec storage (migration 0010) costs in recall and saves in bytes (issue 16).

    PYTHONPATH=src .venv/bin/python bench/halfvec.py [--vectors 20000] [--queries 100]

On a fresh database in the embedded server (or DATABASE_URL's server): the schema as it
was before 0010 (float32 ``vector``), ``--vectors`` clustered random 1536-d unit vectors
loaded into it, their bytes measured; then migration 0010 converts them to halfvec, and the
bytes are measured again. ``--queries`` queries (stored vectors plus noise) are searched
exactly (no index) through store/vectors.search, and their top 10 compared with float32
exact search on the same vectors (numpy): recall@10, and whether the top hit is the same.
Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from ingestflow.config import Settings
from ingestflow.store import vectors
from ingestflow.store.database import migrate, migrations
from support import fresh_database, temporary_home

DIMS, K, CLUSTERS = 1536, 10, 200
PLAN = vectors.SearchPlan(dense=True, keyword=False, config="english", candidates=K, vector_weight=0.5, vector_weight_min=0.5,
                          heading_weight=1.0, max_share=0.5, max_rows=300,
                          ef_search=100, max_scan_tuples=20_000, exact_max=0)


def unit(points: np.ndarray) -> np.ndarray:
    return (points / np.linalg.norm(points, axis=-1, keepdims=True)).astype(np.float32)


def corpus(n: int, queries: int, seed: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``CLUSTERS`` centres, and queries drawn the same way (new points,
    not stored ones): a query's 10th and 11th nearest differ by little, where float16
    rounding could swap them."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, DIMS))

    def draw(count: int) -> np.ndarray:
        return unit(centres[rng.integers(0, CLUSTERS, count)] + 0.8 * rng.standard_normal((count, DIMS)))

    return draw(n), draw(queries)


def load(url: str, stored: np.ndarray) -> tuple[list, int]:
    """The chunks (one document) and their float32 vectors, in the pre-0010 schema."""
    with psycopg.connect(url) as conn:
        register_vector(conn)
        (document,) = conn.execute(
            "INSERT INTO documents (id, tenant, source_name, version, mime, size_bytes, sha256, is_current,"
            " correlation_id) VALUES (gen_random_uuid(), 'default', 'bench.md', 1, 'text/markdown', 1, 'x',"
            " true, gen_random_uuid()) RETURNING id").fetchone()
        ids = [row[0] for row in conn.execute(
            "INSERT INTO chunks (id, document_id, ordinal, text, text_sha256, token_count, metadata, search_config,"
            " search_vector) SELECT gen_random_uuid(), %s, i, 'chunk ' || i, md5(i::text), 3, '{}', 'english',"
            " to_tsvector('english', 'chunk') FROM generate_series(0, %s - 1) i ORDER BY i RETURNING id",
            (document, len(stored))).fetchall()]
        (space_id,) = conn.execute("INSERT INTO embedding_spaces (provider, model, dimensions)"
                                   " VALUES ('bench', 'clustered', %s) RETURNING id", (DIMS,)).fetchone()
        copy_sql = "COPY embeddings (chunk_id, space_id, embedding) FROM STDIN WITH (FORMAT BINARY)"
        with conn.cursor().copy(copy_sql) as copy:
            copy.set_types(["uuid", "int4", "vector"])
            for cid, vec in zip(ids, stored, strict=True):
                copy.write_row((cid, space_id, vec))
    return ids, space_id


def sizes(url: str) -> tuple[float, float, float]:
    """Bytes per stored vector: the value itself, the table (heap + TOAST), and with its
    primary key index."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE embeddings")
        value, table, total, n = conn.execute(
            "SELECT avg(pg_column_size(embedding)), pg_table_size('embeddings'),"
            " pg_total_relation_size('embeddings'), count(*) FROM embeddings").fetchone()
    return float(value), table / n, total / n


async def searched(url: str, space_id: int, ids: list,
                   queries: np.ndarray) -> tuple[list[list[int]], list[list[float]], list[float]]:
    """Each query's top ``K`` (positions in ``ids``), their scores, and milliseconds."""
    position = {cid: i for i, cid in enumerate(ids)}
    found, scores, ms = [], [], []
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for q in queries:
            started = time.perf_counter()
            hits = await vectors.search(conn, PLAN, space_id=space_id, dimensions=DIMS, query_vector=q,
                                        question="chunk", tenant="default", k=K)
            ms.append((time.perf_counter() - started) * 1000)
            found.append([position[h["chunk_id"]] for h in hits])
            scores.append([h["score"] for h in hits])
    return found, scores, ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    halfvec = next(version for version, name, _ in migrations() if name == "0010_halfvec.sql")
    stored, queries = corpus(args.vectors, args.queries)
    with temporary_home() as tmp:
        url = fresh_database(Settings(ingestflow_home=tmp / "home", log_level="WARNING"))
        migrate(url, through=halfvec - 1)
        started = time.perf_counter()
        ids, space_id = load(url, stored)
        load_s = time.perf_counter() - started
        before = sizes(url)
        started = time.perf_counter()
        migrate(url)
        migrate_s = time.perf_counter() - started
        after = sizes(url)
        found, scores, ms = asyncio.run(searched(url, space_id, ids, queries))

    truth = np.argsort(-(queries @ stored.T), axis=1, kind="stable")[:, :K]  # float32 exact
    recall = np.mean([len(set(got) & set(want)) / K for got, want in zip(found, truth.tolist(), strict=True)])
    top1 = np.mean([got[0] == want[0] for got, want in zip(found, truth.tolist(), strict=True)])
    error = max(abs(score - float(stored[i] @ q)) for got, got_scores, q in zip(found, scores, queries, strict=True)
                for i, score in zip(got, got_scores, strict=True))
    print(f"{args.vectors} clustered {DIMS}-d unit vectors ({CLUSTERS} clusters), {args.queries} queries, k={K}")
    print(f"float32 load {load_s:.1f} s; migration 0010 to halfvec {migrate_s:.1f} s")
    print(f"{'bytes per vector':<18} {'value':>8} {'table':>8} {'+pkey':>8}")
    for label, (value, table, total) in (("vector (float32)", before), ("halfvec", after)):
        print(f"{label:<18} {value:8.0f} {table:8.0f} {total:8.0f}")
    print(f"halfvec / float32: table {after[1] / before[1]:.2f}, with pkey {after[2] / before[2]:.2f}")
    print(f"halfvec exact search vs float32 exact: recall@{K} {recall:.4f}, same top hit {top1:.2f}, "
          f"p50 {np.median(ms):.0f} ms per exact search")
    print(f"largest cosine difference, halfvec score vs float32: {error:.1e}")


if __name__ == "__main__":
    main()
