"""Embeddings stored as halfvec (migration 0010): float32 data written before it survives
within float16 tolerance, searches find the same neighbours, the per-space indexes come
back as halfvec ones, and a 3072-d space gets its HNSW index."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import numpy as np
import psycopg
from pgvector import HalfVector
from pgvector.psycopg import register_vector

from ingestflow.store import vectors
from ingestflow.store.database import migrate, migrations
from ingestflow.store.sql import query
from support import NEVER_BINARY

HALFVEC_MIGRATION = next(version for version, name, _ in migrations() if name == "0010_halfvec.sql")
TENANT = "default"
PLAN = vectors.SearchPlan(dense=True, keyword=False, config="english", candidates=10, vector_weight=0.5, vector_weight_min=0.5,
                          heading_weight=1.0, max_share=0.5, max_rows=300,
                          ef_search=100, max_scan_tuples=20_000, exact_max=0, rerank=8)


def clustered(n: int, dims: int, seed: int) -> np.ndarray:
    """Unit vectors around a few centres, so that neighbours are close and ranks matter."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, dims))
    points = centres[rng.integers(0, 8, n)] + 0.6 * rng.standard_normal((n, dims))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def insert_chunks(conn: psycopg.Connection, n: int) -> list[uuid.UUID]:
    """One current document with ``n`` chunks, in plain SQL: the pre-halfvec schema has no
    code path of this version to write through."""
    document = uuid.uuid4()
    conn.execute("INSERT INTO documents (id, tenant, source_name, version, mime, size_bytes, sha256,"
                 " is_current, correlation_id) VALUES (%s, %s, 'notes.md', 1, 'text/markdown', 1, 'x', true, %s)",
                 (document, TENANT, uuid.uuid4()))
    ids = [uuid.uuid4() for _ in range(n)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO chunks (id, document_id, ordinal, text, text_sha256, token_count, metadata,"
            " search_config, search_vector) VALUES (%s, %s, %s, %s, %s, 3, '{}', 'english', to_tsvector('chunk'))",
            [(cid, document, i, f"chunk {i}", hashlib.sha256(f"chunk {i}".encode()).hexdigest())
             for i, cid in enumerate(ids)])
    return ids


def exact_top(stored: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return list(np.argsort(-(stored @ q), kind="stable")[:k])


async def search_ids(url: str, space_id: int, dims: int, q: np.ndarray, k: int) -> list[uuid.UUID]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        hits = await vectors.search(conn, PLAN, space_id=space_id, dimensions=dims, query_vector=q,
                                    question="chunk", tenant=TENANT, k=k)
    return [h["chunk_id"] for h in hits]


WANTED = {"binary_min": NEVER_BINARY, "m": 16, "ef_construction": 64}  # IndexPolicy's defaults


def test_float32_vectors_survive_the_halfvec_migration(empty_database: str) -> None:
    url, dims, n = empty_database, 256, 400
    migrate(url, through=HALFVEC_MIGRATION - 1)
    stored = clustered(n, dims, seed=1)
    with psycopg.connect(url) as conn:
        register_vector(conn)
        ids = insert_chunks(conn, n)
        (space_id,) = conn.execute("INSERT INTO embedding_spaces (provider, model, dimensions)"
                                   " VALUES ('mock', 'old', %s) RETURNING id", (dims,)).fetchone()
        with conn.cursor() as cur:  # numpy arrays go as float32 vector (register_vector)
            cur.executemany("INSERT INTO embeddings (chunk_id, space_id, embedding) VALUES (%s, %s, %s)",
                            [(cid, space_id, vec) for cid, vec in zip(ids, stored, strict=True)])
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:  # the index the previous version built
        conn.execute(f"CREATE INDEX embeddings_hnsw_space_{space_id} ON embeddings"
                     f" USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE space_id = {space_id}")

    assert migrate(url) == ["0010_halfvec.sql"] + [name for v, name, _ in migrations() if v > HALFVEC_MIGRATION]

    with psycopg.connect(url) as conn:
        register_vector(conn)
        column = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                              " WHERE attrelid = 'embeddings'::regclass AND attname = 'embedding'").fetchone()
        assert column == ("halfvec",)
        # The vector index is gone, so the space is found missing one and gets a halfvec one.
        assert conn.execute(query("spaces_without_index"), WANTED).fetchall() == [
            (space_id, dims, False, None)]
        rows = dict(conn.execute("SELECT chunk_id, embedding FROM embeddings").fetchall())
    back = np.stack([rows[cid].to_numpy() for cid in ids]).astype(np.float32)
    assert np.allclose(back, stored, rtol=1e-3, atol=1e-7)  # float16: 11 significant bits

    rng = np.random.default_rng(2)
    for q in stored[rng.choice(n, 20, replace=False)] + 0.05 * rng.standard_normal((20, dims)).astype(np.float32):
        q = q / np.linalg.norm(q)
        want = [ids[i] for i in exact_top(stored, q, 10)]  # float32, before the migration
        got = asyncio.run(search_ids(url, space_id, dims, q, 10))
        assert got[0] == want[0]
        assert len(set(got) & set(want)) >= 9  # a near-tie may swap at the 10th place

    assert asyncio.run(vectors.build_indexes(url, vectors.IndexPolicy(1, NEVER_BINARY))) == [space_id]
    with psycopg.connect(url) as conn:
        (definition,) = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s",
                                     (f"embeddings_hnsw_space_{space_id}",)).fetchone()
        assert f"halfvec({dims})" in definition and "halfvec_cosine_ops" in definition
        assert conn.execute(query("spaces_without_index"), WANTED).fetchall() == []


def test_a_3072_dimension_space_gets_an_hnsw_index_searches_use(database_url: str) -> None:
    """text-embedding-3-large's width: over vector's 2,000-d HNSW limit, within halfvec's."""
    url, dims, n = database_url, 3072, 60
    stored = clustered(n, dims, seed=3)

    async def write() -> tuple[int, list[uuid.UUID], set[uuid.UUID]]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            with psycopg.connect(url) as sync:
                ids = insert_chunks(sync, n)
            space_id = await vectors.ensure_space(conn, "openai", "text-embedding-3-large", dims)
            await vectors.write_vectors(conn, ids[: n // 2], space_id, stored[: n // 2])
            added = await vectors.add_vectors(conn, ids[n // 2:], space_id, stored[n // 2:])  # the batch path
            await conn.commit()
            return space_id, ids, added

    space_id, ids, added = asyncio.run(write())
    assert added == set(ids[n // 2:])
    assert asyncio.run(vectors.build_indexes(url, vectors.IndexPolicy(1, NEVER_BINARY))) == [space_id]

    with psycopg.connect(url) as conn:
        register_vector(conn)
        (definition,) = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s",
                                     (f"embeddings_hnsw_space_{space_id}",)).fetchone()
        assert "halfvec(3072)" in definition and "halfvec_cosine_ops" in definition
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL enable_sort = off")  # 60 rows: else sorting them all is cheaper
            plan = conn.execute("EXPLAIN " + query("search").replace("{dims}", str(dims)), {
                "dense": True, "keyword": False, "config": "english", "candidates": 10, "vector_weight": 0.5, "vector_weight_min": 0.5,
                "heading_weight": 1.0, "max_share": 0.5, "max_rows": 300,
                "space_id": space_id, "query": HalfVector(stored[0]), "question": "chunk", "tenant": TENANT,
                "k": 10, "source_name": None, "document_ids": None, "mime": None, "exact": False, "binary": False, "rerank": 8,
            }, prepare=False).fetchall()
        assert f"embeddings_hnsw_space_{space_id}" in "\n".join(row[0] for row in plan)

    for i in (0, 17, 45):  # each stored vector is its own nearest neighbour, through the index
        assert asyncio.run(search_ids(url, space_id, dims, stored[i], 3))[0] == ids[i]


def test_vectors_are_stored_inside_their_rows(database_url: str) -> None:
    """Not in TOAST (migration 0011): a 1536-d halfvec is over the TOAST threshold, and out
    of line every exact comparison or re-rank read two more tuples."""
    url, dims, n = database_url, 1536, 50

    async def write() -> None:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            with psycopg.connect(url) as sync:
                ids = insert_chunks(sync, n)
            space_id = await vectors.ensure_space(conn, "openai", "text-embedding-3-small", dims)
            await vectors.write_vectors(conn, ids, space_id, clustered(n, dims, seed=5))
            await conn.commit()

    asyncio.run(write())
    with psycopg.connect(url) as conn:
        toast, size = conn.execute(
            "SELECT sum(pg_relation_size(c.reltoastrelid)), (SELECT min(pg_column_size(embedding)) FROM embeddings)"
            " FROM pg_partition_tree('embeddings') p JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf").fetchone()
    assert size > 2032 and toast == 0  # each over the TOAST threshold, none of them in TOAST
