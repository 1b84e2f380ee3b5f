"""Per-space storage: dropping an old space, and an HNSW build's memory.

Drop: N vectors of one tenant in a space of their own go by a TRUNCATE of the space's
partition (vectors.drop_tenant_space); the same N in a space another tenant also holds (one
vector) go by DELETE. Build: the same clustered vectors in two spaces, one index built
with Postgres's default maintenance_work_mem (64 MB), one with the size build_memory_mb()
chooses. Prints seconds; asserts nothing.

    .venv/bin/python bench/partitions.py --drop-vectors 100000 --build-vectors 20000
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
import psycopg
from pgvector import HalfVector
from pgvector.psycopg import register_vector

from ingestflow.config import Settings
from ingestflow.store import vectors
from ingestflow.store.database import migrate
from support import fresh_database, temporary_home

NEVER_BINARY = 64_001


def clustered(n: int, dims: int, seed: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, dims))
    points = centres[rng.integers(0, 200, n)] + 0.8 * rng.standard_normal((n, dims))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float16)


def load(url: str, tenant: str, space_id: int, stored: np.ndarray) -> None:
    """One document of the tenant with a chunk and a vector per row of ``stored``."""
    with psycopg.connect(url) as conn:
        register_vector(conn)
        (document,) = conn.execute(
            "INSERT INTO documents (id, tenant, source_name, version, mime, size_bytes, sha256, is_current,"
            " correlation_id) VALUES (gen_random_uuid(), %s, gen_random_uuid()::text, 1, 'text/markdown', 1, 'x',"
            " true, gen_random_uuid()) RETURNING id", (tenant,)).fetchone()
        ids = [row[0] for row in conn.execute(
            "INSERT INTO chunks (id, document_id, ordinal, text, text_sha256, token_count, metadata, search_config,"
            " search_vector) SELECT gen_random_uuid(), %s, i, 'chunk ' || i, md5(i::text), 3, '{}', 'english',"
            " to_tsvector('english', 'chunk') FROM generate_series(0, %s - 1) i ORDER BY i RETURNING id",
            (document, len(stored))).fetchall()]
        copy_sql = "COPY embeddings (chunk_id, space_id, embedding) FROM STDIN WITH (FORMAT BINARY)"
        with conn.cursor().copy(copy_sql) as copy:
            copy.set_types(["uuid", "int4", "halfvec"])
            for cid, vec in zip(ids, stored, strict=True):
                copy.write_row((cid, space_id, HalfVector(vec)))


async def space(url: str, name: str, dims: int) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await vectors.ensure_space(conn, "bench", name, dims)


async def drop(url: str, space_id: int) -> tuple[int, float]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        began = time.perf_counter()
        async with conn.transaction():
            count = await vectors.drop_tenant_space(conn, "a", space_id)
        return count, time.perf_counter() - began


def build(url: str, space_id: int, memory_mb: int) -> float:
    began = time.perf_counter()
    assert space_id in asyncio.run(vectors.build_indexes(url, vectors.IndexPolicy(1, NEVER_BINARY, memory_mb)))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drop-vectors", type=int, default=100_000)
    parser.add_argument("--drop-dims", type=int, default=256, help="width of the dropped spaces' vectors")
    parser.add_argument("--build-vectors", type=int, default=20_000)
    parser.add_argument("--build-dims", type=int, default=1536)
    args = parser.parse_args()
    with temporary_home() as tmp:
        url = fresh_database(Settings(ingestflow_home=tmp / "home", log_level="WARNING"))
        migrate(url)
        stored = clustered(args.drop_vectors, args.drop_dims)
        alone, shared = asyncio.run(space(url, "alone", args.drop_dims)), asyncio.run(space(url, "shared", args.drop_dims))
        load(url, "a", alone, stored)
        load(url, "a", shared, stored)
        load(url, "b", shared, stored[:1])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        truncated, truncate_s = asyncio.run(drop(url, alone))
        deleted, delete_s = asyncio.run(drop(url, shared))
        asyncio.run(vectors.build_indexes(url, vectors.IndexPolicy(1, NEVER_BINARY)))  # b's one vector, not timed
        print(f"drop {truncated:,} vectors ({args.drop_dims}-d): partition truncate {truncate_s:.3f} s,"
              f" DELETE {deleted:,} rows {delete_s:.3f} s")

        stored = clustered(args.build_vectors, args.build_dims, seed=17)
        sized = vectors.build_memory_mb(args.build_vectors, args.build_dims, binary=False, m=16)
        for name, memory in (("default", vectors.BUILD_MEMORY_FLOOR_MB), ("sized", sized)):
            space_id = asyncio.run(space(url, f"build-{name}", args.build_dims))
            load(url, "a", space_id, stored)
            seconds = build(url, space_id, memory)
            print(f"HNSW build, {args.build_vectors:,} x {args.build_dims}-d, maintenance_work_mem {memory} MB"
                  f" ({name}): {seconds:.1f} s")


if __name__ == "__main__":
    main()
