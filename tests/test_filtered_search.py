"""Vector search filtered to one tenant of a big shared space (issue 16): a tenant with few
chunks is compared exactly and gets its true k nearest, where the HNSW graph, walking other
tenants' vectors first, runs out of its scan budget (hnsw.max_scan_tuples) with fewer."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import numpy as np
import psycopg
from pgvector import HalfVector
from pgvector.psycopg import register_vector

from ingestflow.store import chunks, documents, vectors
from ingestflow.store.chunks import NewChunk
from ingestflow.store.documents import NewFile
from ingestflow.store.files import PostgresFileStore
from ingestflow.store.sql import query

DIMS, K = 64, 5
PLAN = vectors.SearchPlan(dense=True, keyword=False, config="english", candidates=K, rrf_k=60, keyword_weight=1.0,
                          max_share=0.5, max_rows=300, normalization=0, ef_search=10, max_scan_tuples=20,
                          exact_max=0)


def unit(n: int, seed: int) -> np.ndarray:
    points = np.random.default_rng(seed).standard_normal((n, DIMS))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


async def write(conn: psycopg.AsyncConnection, tenant: str, space_id: int, stored: np.ndarray) -> list[uuid.UUID]:
    """One current document of the tenant holding these vectors, through the write path."""
    async with conn.transaction():
        name = f"{tenant}.md"
        (reg,) = await documents.register(conn, tenant=tenant, files=[NewFile(name, name.encode(), "text/markdown")],
                                          store=PostgresFileStore())
        rows = [NewChunk(i, f"passage {i}", 2, {}) for i in range(len(stored))]
        await chunks.replace(conn, {reg.document_id: rows}, search_config="english")
        ids = [documents.chunk_id(reg.document_id, c.ordinal) for c in rows]
        await vectors.write_vectors(conn, ids, space_id, stored)
        await documents.lock_sources(conn, [(tenant, name)])
        await documents.make_current(conn, [reg.document_id])
    return ids


def test_a_small_tenant_in_an_indexed_space_gets_its_true_nearest(database_url: str) -> None:
    big, small, q = unit(600, seed=1), unit(8, seed=2), unit(1, seed=3)[0]

    async def scenario() -> tuple[list[uuid.UUID], list, list, list]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            space_id = await vectors.ensure_space(conn, "mock", "filtered", DIMS)
            await write(conn, "big", space_id, big)
            small_ids = await write(conn, "small", space_id, small)
            assert await vectors.build_indexes(database_url, min_vectors=1) == [space_id]
            await conn.execute("ANALYZE")

            async def nearest(plan: vectors.SearchPlan, tenant: str) -> list:
                hits = await vectors.search(conn, plan, space_id=space_id, dimensions=DIMS, query_vector=q,
                                            question="passage", tenant=tenant, k=K)
                return [h["chunk_id"] for h in hits]

            graph = await nearest(PLAN, "small")  # exact_max 0: the graph, whatever the tenant's size
            exact = await nearest(replace(PLAN, exact_max=8), "small")  # 8 chunks pass the filter: exact
            large = await nearest(replace(PLAN, exact_max=8, max_scan_tuples=20_000), "big")  # 600: the graph
            return small_ids, graph, exact, large

    small_ids, graph, exact, large = asyncio.run(scenario())
    truth = [small_ids[i] for i in np.argsort(-(small @ q), kind="stable")[:K]]
    assert len(graph) < K  # the graph's walk of 20 tuples met few of the small tenant's 8 vectors
    assert exact == truth  # every vector compared: the true nearest, in order
    assert len(large) == K and not set(large) & set(small_ids)


def explain(url: str, exact: bool, space_id: int) -> str:
    with psycopg.connect(url) as conn:
        register_vector(conn)
        plan = conn.execute("EXPLAIN " + query("search").replace("{dims}", str(DIMS)), {
            "dense": True, "keyword": False, "config": "english", "candidates": K, "rrf_k": 60,
            "keyword_weight": 1.0, "max_share": 0.5, "max_rows": 300, "normalization": 0, "exact": exact,
            "space_id": space_id, "query": HalfVector(unit(1, seed=4)[0]), "question": "passage", "tenant": "small",
            "k": K, "source_name": None, "document_ids": None, "mime": None,
        }, prepare=False).fetchall()
    return "\n".join(row[0] for row in plan)


def test_the_exact_path_reads_the_tenants_vectors_and_not_the_graph(database_url: str) -> None:
    async def indexed() -> int:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            space_id = await vectors.ensure_space(conn, "mock", "filtered", DIMS)
            await write(conn, "big", space_id, unit(2000, seed=5))
            await write(conn, "small", space_id, unit(3, seed=6))
        await vectors.build_indexes(database_url, min_vectors=1)
        return space_id

    space_id = asyncio.run(indexed())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    index = f"embeddings_hnsw_space_{space_id}"
    assert index not in explain(database_url, True, space_id)
    assert index in explain(database_url, False, space_id)
