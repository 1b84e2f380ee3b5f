"""Each space's HNSW index and how search uses it (issue 16).

- A tenant of a big shared space with few chunks is compared exactly and gets its true k
  nearest, where the graph, walking other tenants' vectors first, runs out of its scan
  budget (hnsw.max_scan_tuples) with fewer.
- Wide spaces index sign bits (binary quantization); search walks that graph and re-ranks
  by the halfvec vectors, and a changed policy swaps one kind of index for the other."""

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
from support import NEVER_BINARY

DIMS, K = 64, 5
PLAN = vectors.SearchPlan(dense=True, keyword=False, config="english", candidates=K, vector_weight=0.5, vector_weight_min=0.5, heading_weight=1.0,
                          max_share=0.5, max_rows=300, ef_search=10, max_scan_tuples=20,
                          exact_max=0, rerank=1)


def unit(n: int, seed: int) -> np.ndarray:
    points = np.random.default_rng(seed).standard_normal((n, DIMS))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


async def write(conn: psycopg.AsyncConnection, tenant: str, space_id: int, stored: np.ndarray,
                name: str = "notes.md") -> list[uuid.UUID]:
    """One current document of the tenant holding these vectors, through the write path."""
    async with conn.transaction():
        (reg,) = await documents.register(conn, tenant=tenant, files=[NewFile(name, name.encode(), "text/markdown")],
                                          store=PostgresFileStore())
        rows = [NewChunk(i, f"passage {i}", f"passage {i}", 2, {}) for i in range(len(stored))]
        await chunks.replace(conn, {reg.document_id: rows}, search_config="english")
        ids = [documents.chunk_id(reg.document_id, c.ordinal) for c in rows]
        await vectors.write_vectors(conn, ids, space_id, stored)
        await documents.lock_sources(conn, [(tenant, name)])
        await documents.make_current(conn, [reg.document_id])
    return ids


def test_a_small_tenant_in_an_indexed_space_gets_its_true_nearest(database_url: str) -> None:
    # 3,000 big-tenant vectors: at 600 the planner's choice between the graph and a sort of
    # every row is close, and a sort is the exact answer the graph's assertion rules out.
    big, small, q = unit(3000, seed=1), unit(8, seed=2), unit(1, seed=3)[0]

    async def scenario() -> tuple[list[uuid.UUID], list, list, list]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            space_id = await vectors.ensure_space(conn, "mock", "filtered", DIMS)
            await write(conn, "big", space_id, big)
            small_ids = await write(conn, "small", space_id, small)
            assert await vectors.build_indexes(database_url, vectors.IndexPolicy(1, NEVER_BINARY)) == [space_id]
            await conn.execute("ANALYZE")

            async def nearest(plan: vectors.SearchPlan, tenant: str) -> list:
                hits = await vectors.search(conn, plan, space_id=space_id, dimensions=DIMS, query_vector=q,
                                            question="passage", tenant=tenant, k=K)
                return [h["chunk_id"] for h in hits]

            graph = await nearest(PLAN, "small")  # exact_max 0: the graph, whatever the tenant's size
            exact = await nearest(replace(PLAN, exact_max=8), "small")  # 8 chunks pass the filter: exact
            large = await nearest(replace(PLAN, exact_max=8, max_scan_tuples=20_000), "big")  # 3,000: the graph
            return small_ids, graph, exact, large

    small_ids, graph, exact, large = asyncio.run(scenario())
    truth = [small_ids[i] for i in np.argsort(-(small @ q), kind="stable")[:K]]
    assert len(graph) < K  # the graph's walk of 20 tuples met few of the small tenant's 8 vectors
    assert exact == truth  # every vector compared: the true nearest, in order
    assert len(large) == K and not set(large) & set(small_ids)


def explain(url: str, exact: bool, space_id: int, *, binary: bool = False) -> str:
    with psycopg.connect(url) as conn:
        register_vector(conn)
        plan = conn.execute("EXPLAIN " + query("search").replace("{dims}", str(DIMS)), {
            "dense": True, "keyword": False, "config": "english", "candidates": K, "vector_weight": 0.5, "vector_weight_min": 0.5,
            "heading_weight": 1.0, "max_share": 0.5, "max_rows": 300, "exact": exact,
            "binary": binary, "rerank": 8,
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
        await vectors.build_indexes(database_url, vectors.IndexPolicy(1, NEVER_BINARY))
        return space_id

    space_id = asyncio.run(indexed())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    index = f"embeddings_hnsw_space_{space_id}"
    assert index not in explain(database_url, True, space_id)
    assert index in explain(database_url, False, space_id)


def indexes(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'embeddings\\_%%\\_space\\_%%' ORDER BY 1")]


def test_a_wide_space_indexes_sign_bits_and_reranks_by_the_full_vectors(database_url: str) -> None:
    stored = unit(3000, seed=7)
    asked = [0, 17, 999, 2024]  # stored vectors: Hamming distance 0 to themselves, cosine 1

    async def scenario() -> tuple[int, list[uuid.UUID], list[list[uuid.UUID]]]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            space_id = await vectors.ensure_space(conn, "mock", "wide", DIMS)
            ids = await write(conn, "default", space_id, stored)
            assert await vectors.build_indexes(database_url, vectors.IndexPolicy(1, DIMS)) == [space_id]
            await conn.execute("ANALYZE")
            plan = replace(PLAN, max_scan_tuples=20_000, ef_search=40, rerank=8)
            found = []
            for i in asked:
                hits = await vectors.search(conn, plan, space_id=space_id, dimensions=DIMS, query_vector=stored[i],
                                            question="passage", tenant="default", k=K)
                found.append([h["chunk_id"] for h in hits])
            return space_id, ids, found

    space_id, ids, found = asyncio.run(scenario())
    assert indexes(database_url) == [f"embeddings_binary_space_{space_id}"]
    assert f"embeddings_binary_space_{space_id}" in explain(database_url, False, space_id, binary=True)
    for i, hits in zip(asked, found, strict=True):
        assert len(hits) == K and hits[0] == ids[i]
        scores = [float(stored[ids.index(cid)] @ stored[i]) for cid in hits]
        # re-ranked by cosine, whatever the bits said (float16 against float32: 1e-3 of slack)
        assert all(a >= b - 1e-3 for a, b in zip(scores, scores[1:]))

    # The policy changes (the space is now narrower than the binary threshold): the halfvec
    # index is built and the binary one dropped, and back again.
    assert asyncio.run(vectors.build_indexes(database_url, vectors.IndexPolicy(1, NEVER_BINARY))) == [space_id]
    assert indexes(database_url) == [f"embeddings_hnsw_space_{space_id}"]
    assert asyncio.run(vectors.build_indexes(database_url, vectors.IndexPolicy(1, DIMS))) == [space_id]
    assert indexes(database_url) == [f"embeddings_binary_space_{space_id}"]


def partition(url: str, space_id: int) -> tuple[str, int] | None:
    """The space's partition of embeddings and its file node (a TRUNCATE gives it a new one)."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT c.relname::text, c.relfilenode FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                            " WHERE i.inhparent = 'embeddings'::regclass AND c.relname = %s",
                            (f"embeddings_space_{space_id}",)).fetchone()


def test_each_space_is_a_partition_and_dropping_one_tenants_space_truncates_it(database_url: str) -> None:
    async def scenario() -> tuple[int, int, tuple, tuple]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            shared = await vectors.ensure_space(conn, "mock", "shared", DIMS)
            alone = await vectors.ensure_space(conn, "mock", "alone", DIMS)
            for tenant in ("a", "b"):
                await write(conn, tenant, shared, unit(30, seed=9))
            await write(conn, "a", alone, unit(40, seed=10), name="other.md")
            before = (partition(database_url, shared), partition(database_url, alone))
            async with conn.transaction():
                dropped_alone = await vectors.drop_tenant_space(conn, "a", alone)
            async with conn.transaction():
                dropped_shared = await vectors.drop_tenant_space(conn, "a", shared)
            # The truncated partition takes the space's vectors again, and search finds them.
            again = unit(K, seed=11)
            written = await write(conn, "a", alone, again, name="again.md")
            hits = await vectors.search(conn, replace(PLAN, exact_max=100), space_id=alone, dimensions=DIMS,
                                        query_vector=again[0], question="passage", tenant="a", k=K)
            found = [h["chunk_id"] for h in hits]
            assert found[0] == written[0] and set(found) == set(written)
            return shared, alone, before, (dropped_alone, dropped_shared)

    shared, alone, before, dropped = asyncio.run(scenario())
    assert dropped == (40, 30)
    # Only tenant a held vectors in `alone`: its partition was truncated (a new file node),
    # and stays, empty, for the space's next vectors.
    assert partition(database_url, alone)[1] != before[1][1]
    # Tenant b holds vectors in `shared` too: a's rows were deleted, b's stay, same file.
    assert partition(database_url, shared) == before[0]
    with psycopg.connect(database_url) as conn:
        left = {(space, tenant): n for space, tenant, n in conn.execute(
            "SELECT e.space_id, d.tenant, count(*) FROM embeddings e JOIN chunks c ON c.id = e.chunk_id"
            " JOIN documents d ON d.id = c.document_id GROUP BY 1, 2")}
    assert left == {(shared, "b"): 30, (alone, "a"): K}  # a's later vectors in `alone`, nothing else of a's


def test_an_index_build_sizes_its_memory_to_the_space_and_logs_it(database_url: str) -> None:
    from structlog.testing import capture_logs

    # Sized so the graph fits: floored at Postgres's default, capped, grows with the space.
    assert vectors.build_memory_mb(100, 1536, binary=False, m=16) == vectors.BUILD_MEMORY_FLOOR_MB
    assert vectors.build_memory_mb(100_000, 1536, binary=False, m=16) == 468  # 100k x (3,072 + 1,024) x 1.2
    assert vectors.build_memory_mb(1_000_000, 1536, binary=False, m=16) == vectors.BUILD_MEMORY_CAP_MB
    assert vectors.build_memory_mb(100_000, 8192, binary=True, m=16) < vectors.build_memory_mb(100_000, 8192 // 4, False, 16)
    assert vectors.build_memory_mb(100_000, 1536, binary=False, m=32) == 585  # 100k x (3,072 + 2,048) x 1.2

    async def scenario(policy: vectors.IndexPolicy, count: int = 20) -> tuple[int, list[int]]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            space_id = await vectors.ensure_space(conn, "mock", f"memory-{policy.build_memory_mb}", DIMS)
            await write(conn, "a", space_id, unit(count, seed=11), name=f"m{policy.build_memory_mb}.md")
        return space_id, await vectors.build_indexes(database_url, policy)

    vectors.log.debug("configure")  # logging is configured on first use, which must not undo capture_logs
    with capture_logs() as logs:
        sized, built_sized = asyncio.run(scenario(vectors.IndexPolicy(1, NEVER_BINARY)))
        fixed, built_fixed = asyncio.run(scenario(vectors.IndexPolicy(1, NEVER_BINARY, build_memory_mb=96)))
        # 1 MB (Postgres's least) holds a few thousand 64-d elements: the graph spills.
        spilled, built_spilled = asyncio.run(scenario(vectors.IndexPolicy(1, NEVER_BINARY, build_memory_mb=1), 6000))
    assert built_sized == [sized] and built_fixed == [fixed] and built_spilled == [spilled]
    events = {e["space_id"]: e for e in logs if e["event"] == "index_built"}
    assert events[sized]["vectors"] == 20 and events[sized]["maintenance_work_mem_mb"] == vectors.BUILD_MEMORY_FLOOR_MB
    assert events[fixed]["maintenance_work_mem_mb"] == 96 and events[fixed]["seconds"] >= 0
    assert events[sized]["notices"] == [] and events[sized]["log_level"] == "info"
    # pgvector says when the graph outgrows the memory, and the build is then a warning with advice.
    assert any("no longer fits into maintenance_work_mem" in n for n in events[spilled]["notices"])
    assert events[spilled]["log_level"] == "warning" and "INDEX_BUILD_MEMORY_MB" in events[spilled]["advice"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = ANY(%s)",
                            ([f"embeddings_hnsw_space_{sized}", f"embeddings_hnsw_space_{fixed}"],)).fetchone()[0] == 2


def test_only_a_binary_graph_widens_ef_search_to_what_it_reranks(database_url: str) -> None:
    """ef_search is SEARCH_HNSW_EF_SEARCH on a halfvec graph; a binary one must yield the
    candidates x rerank it re-ranks, so it walks at least that many."""
    async def ef_search(policy_min: int) -> str:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            space_id = await vectors.ensure_space(conn, "mock", "ef", DIMS)
            await vectors.build_indexes(database_url, vectors.IndexPolicy(1, policy_min))
            async with conn.transaction():
                await conn.execute(query("search_prepare"), {
                    "dense": True, "tenant": "default", "source_name": None, "document_ids": None, "mime": None,
                    "exact_max": 0, "space_id": space_id, "ef_search": 40, "prefetch": 160, "max_scan_tuples": 100})
                return (await (await conn.execute("SHOW hnsw.ef_search")).fetchone())[0]

    async def seed() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await write(conn, "default", await vectors.ensure_space(conn, "mock", "ef", DIMS), unit(20, seed=11))

    asyncio.run(seed())
    assert asyncio.run(ef_search(NEVER_BINARY)) == "40"
    assert asyncio.run(ef_search(DIMS)) == "160"


def reloptions(url: str, index: str) -> list[str] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT reloptions FROM pg_class WHERE relname = %s", (index,)).fetchone()
    return row and row[0]


def test_changed_build_parameters_rebuild_the_index_while_search_uses_the_old_one(database_url: str) -> None:
    """HNSW_M / HNSW_EF_CONSTRUCTION reach the index; a change builds a replacement under the
    _next name, concurrently, and search keeps the old index until the new one takes its
    name. A replacement a dead build left is dropped and built again."""
    policy = vectors.IndexPolicy(1, NEVER_BINARY, m=8, ef_construction=32)

    async def indexed() -> int:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            space_id = await vectors.ensure_space(conn, "mock", "rebuilt", DIMS)
            await write(conn, "small", space_id, unit(2000, seed=12))
            await conn.execute("ANALYZE")
        assert await vectors.build_indexes(database_url, policy) == [space_id]
        assert await vectors.build_indexes(database_url, policy) == []  # built as wanted: nothing to do
        return space_id

    space_id = asyncio.run(indexed())
    index = f"embeddings_hnsw_space_{space_id}"
    assert reloptions(database_url, index) == ["m=8", "ef_construction=32"]

    async def rebuilt_while_a_writer_holds_the_partition() -> str:
        # CREATE INDEX CONCURRENTLY registers the new index, then waits for this writer to end.
        async with await psycopg.AsyncConnection.connect(database_url) as writer:
            await writer.execute(f"LOCK TABLE embeddings_space_{space_id} IN ROW EXCLUSIVE MODE")
            build = asyncio.create_task(vectors.build_indexes(database_url, replace(policy, ef_construction=48)))
            while f"{index}_next" not in indexes(database_url):
                await asyncio.sleep(0.05)
            during = explain(database_url, False, space_id)
            await writer.rollback()
        assert await build == [space_id]
        return during

    during = asyncio.run(rebuilt_while_a_writer_holds_the_partition())
    assert f"{index} " in during  # the old index, by its own name, not the one being built
    assert indexes(database_url) == [index]
    assert reloptions(database_url, index) == ["m=8", "ef_construction=48"]

    # A dead build's replacement, left under the _next name, is dropped and built again.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE INDEX {index}_next ON embeddings_space_{space_id} USING hnsw"
                     f" ((embedding::halfvec({DIMS})) halfvec_cosine_ops) WITH (m = 4)")
    assert asyncio.run(vectors.build_indexes(database_url, replace(policy, m=12, ef_construction=48))) == [space_id]
    assert indexes(database_url) == [index]
    assert reloptions(database_url, index) == ["m=12", "ef_construction=48"]
    assert f"{index} " in explain(database_url, False, space_id)


def test_an_index_built_before_the_settings_has_pgvectors_defaults(database_url: str) -> None:
    """No reloptions means m 16 and ef_construction 64: up to date for that policy, rebuilt
    for another (the default HNSW_EF_CONSTRUCTION of 200 rebuilds it once)."""
    async def written() -> int:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            space_id = await vectors.ensure_space(conn, "mock", "legacy", DIMS)
            await write(conn, "small", space_id, unit(50, seed=13))
        return space_id

    space_id = asyncio.run(written())
    index = f"embeddings_hnsw_space_{space_id}"
    with psycopg.connect(database_url, autocommit=True) as conn:  # as the version before built it
        conn.execute(f"CREATE INDEX {index} ON embeddings_space_{space_id} USING hnsw"
                     f" ((embedding::halfvec({DIMS})) halfvec_cosine_ops)")
    assert reloptions(database_url, index) is None
    assert asyncio.run(vectors.build_indexes(database_url, vectors.IndexPolicy(1, NEVER_BINARY))) == []
    wanted = vectors.IndexPolicy(1, NEVER_BINARY, m=16, ef_construction=200)
    assert asyncio.run(vectors.build_indexes(database_url, wanted)) == [space_id]
    assert reloptions(database_url, index) == ["m=16", "ef_construction=200"]
