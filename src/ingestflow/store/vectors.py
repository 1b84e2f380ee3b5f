"""Embedding spaces, bulk vector writes, hybrid search, and each space's HNSW index.

A space is (provider, model, dimensions). Vectors are only ever compared inside one
space: search reads one space's partition of ``embeddings``, which has its own HNSW index.
Vectors are stored as pgvector ``halfvec`` (float16): half the bytes of ``vector``, HNSW up
to 4,000 dimensions, and exact search finds the same top 10 as float32 (bench/halfvec.py).

Spaces of ``binary_min_dimensions`` or more index their vectors' sign bits instead (pgvector
``binary_quantize``, Hamming distance; HNSW takes bit up to 64,000 dimensions), and search
re-ranks ``rerank`` times the candidates it needs by the full halfvec vectors. That graph
is 8x smaller and 3x faster to build, but on clustered 1536-d vectors its recall@10 fell
from 0.96 at 100k vectors to 0.51 at 1M (bench/scale.py), so by default only spaces too
wide for a halfvec index (over 4,000 dimensions) use it.

The index is built once a space holds ``min_vectors`` vectors, not at its creation:
maintaining HNSW costs ~2 ms per 1536-d insert here (28x the plain write), while an exact
scan of a few thousand vectors is fast and returns the true nearest neighbours. Building
the graph once, after the bulk of a load, is also how pgvector recommends loading. The
build runs CONCURRENTLY, so writes and searches go on meanwhile.

Bulk loads (issue 30). At 1M vectors an insert through the graph costs 10-20 ms against
0.13 ms for the row, and a build ~2 ms a vector: a re-embed or an initial load of 1M
chunks that met its index at ``min_vectors`` spent hours inserting the rest one by one,
where loading without the index and building once takes ~36 min. So the space the queue
fills (the configured model's; ``filling``) gets its index only once the queue has
drained: while the vectors still queued for it (runnable jobs times chunks per document,
from the planner's statistics) exceed ``max(min_vectors, BUILD_BACKLOG_SHARE * vectors)``,
the build is held back; and an index that the queued load would at least double
(``DROP_BACKLOG_SHARE``) is dropped, being cheaper to build again than to insert into.
Whatever the order of writes, more of them before the build is always less total work
(a vector costs ``c_build`` in a build and 5-10x that inserted), so the only price of
waiting is search meanwhile, which stays correct: a space without its index is compared
exactly (search.sql's plan without the graph), and the space is marked as loading
(``bulk_load_since``) so search says it is warming up. A space that trickles in (the
queue drains between documents) is indexed at ``min_vectors`` and inserted into as
before; the old model's space during a model change is not the one being filled, so it
keeps its index and serves search until the switch.

Why not an unindexed side table merged later: a merge is a build over everything anyway
(an HNSW graph takes no bulk insert), the search would union two plans on every query,
and trickle writes would have to choose a side. Holding the index back needs one column
and no change to the write path. What it costs: during a big load into a space that
already served search (an index dropped), that search is exact, seconds a query at 1M.

Builds and drops happen only under the index advisory lock (one builder among all
workers); a worker killed mid-build leaves an invalid or unrenamed index that the next
maintenance drops and builds again, and the lock dies with its session. The decision is
taken again every INDEX_CHECK_SECONDS from the queue itself, so once the queue drains
some worker builds the index: no space stays without one.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingestflow.logging import get_logger
from ingestflow.store.sql import query

if TYPE_CHECKING:
    import numpy as np

    from ingestflow.config import Settings

MAX_INDEXED_DIMENSIONS = 4000  # pgvector's HNSW limit for halfvec, the stored type (bit: 64,000)
# pgvector's in-memory graph per element at m 16: the vector plus ~2*m=32 level-0 neighbour
# slots (and the few upper levels) at ~16 bytes each, with headers: ~1 kB besides the vector.
GRAPH_BYTES_PER_ELEMENT = 1024
BUILD_MEMORY_FLOOR_MB = 64  # Postgres's default maintenance_work_mem
BUILD_MEMORY_CAP_MB = 2048  # a sized build never takes more, however big the space
# A space the queue fills is built once the vectors queued for it are at most this share of
# it (or fewer than min_vectors): at 1M, 10,000 left to insert through the graph is ~7% of
# the build. Its index is dropped when the queue would add at least this share (x2 the space).
BUILD_BACKLOG_SHARE = 0.01
DROP_BACKLOG_SHARE = 1.0

log = get_logger("ingestflow.vectors")


def _template(name: str, **values: int) -> str:
    """A named query with ``{placeholders}`` filled in from integers. Only for what bind
    parameters cannot carry (DDL, a type modifier such as vector(1536)); ``int()`` makes
    sure nothing but a number ever reaches the SQL text."""
    sql = query(name)
    for key, value in values.items():
        sql = sql.replace("{" + key + "}", str(int(value)))
    return sql


async def ensure_space(conn: AsyncConnection, provider: str, model: str, dimensions: int) -> int:
    """The id of the space, creating it on first use."""
    params = {"provider": provider, "model": model, "dimensions": dimensions}
    row = await (await conn.execute(query("space_get"), params)).fetchone()
    if row:
        return row[0]
    async with conn.transaction():
        await conn.execute(query("space_lock"))
        cur = await conn.execute(query("space_insert"), params)
        space_id = (await cur.fetchone())[0]
        await conn.execute(_template("space_partition", space_id=space_id))  # its vectors' table
    return space_id


@dataclass(frozen=True)
class IndexPolicy:
    """When a space gets its HNSW index, which kind, and how it is built (settings
    HNSW_MIN_VECTORS, HNSW_BINARY_MIN_DIMENSIONS, INDEX_BUILD_MEMORY_MB, HNSW_M,
    HNSW_EF_CONSTRUCTION; ``of`` reads them)."""

    min_vectors: int  # built once the space holds this many vectors (exact search before)
    binary_min_dimensions: int  # spaces this wide index sign bits; narrower ones halfvec
    build_memory_mb: int = 0  # maintenance_work_mem of a build; 0: sized by build_memory_mb()
    m: int = 16  # the graph's build parameters; these two defaults are pgvector's own
    ef_construction: int = 64

    @classmethod
    def of(cls, settings: Settings, min_vectors: int | None = None) -> IndexPolicy:
        return cls(settings.hnsw_min_vectors if min_vectors is None else min_vectors,
                   settings.hnsw_binary_min_dimensions, settings.index_build_memory_mb,
                   settings.hnsw_m, settings.hnsw_ef_construction)


def build_memory_mb(vectors: int, dimensions: int, binary: bool, m: int) -> int:
    """maintenance_work_mem (MB) for a space's HNSW build, sized so the whole graph fits:
    past it pgvector logs "hnsw graph no longer fits into maintenance_work_mem" and goes on
    inserting on disk, several times slower. Floored at Postgres's default, capped at
    BUILD_MEMORY_CAP_MB; a fifth more than the estimate as headroom."""
    vector_bytes = (dimensions + 7) // 8 if binary else 2 * dimensions  # bits or halfvec
    graph_bytes = GRAPH_BYTES_PER_ELEMENT * m / 16  # neighbour lists grow with m
    estimate = vectors * (vector_bytes + graph_bytes) * 1.2 / 2**20
    return int(min(max(estimate, BUILD_MEMORY_FLOOR_MB), BUILD_MEMORY_CAP_MB))


def bulk_load(vectors: int, backlog: int, min_vectors: int, *, indexed: bool) -> bool:
    """Whether a space holding ``vectors`` with ``backlog`` more queued for it is in a bulk
    load: no index is built while it is, and one it has is dropped (module docstring)."""
    if indexed:
        return backlog >= max(min_vectors, DROP_BACKLOG_SHARE * vectors)
    return backlog > max(min_vectors, BUILD_BACKLOG_SHARE * vectors)


async def _loading(conn: AsyncConnection, policy: IndexPolicy, space_id: int, *, indexed: bool) -> bool:
    """``bulk_load`` for the space the queue fills, from the queue's runnable jobs (counted
    no further than the decision needs) and the planner's sizes; marks the space as
    loading when it is."""
    row = await (await conn.execute(query("space_load"), {"space_id": space_id})).fetchone()
    vectors, per_document = max(row[0], policy.min_vectors), row[1]  # it has at least that: checked, or indexed
    threshold = max(policy.min_vectors, (DROP_BACKLOG_SHARE if indexed else BUILD_BACKLOG_SHARE) * vectors)
    cap = int(threshold / per_document) + 2
    jobs = (await (await conn.execute(query("backlog"), {"cap": cap})).fetchone())[0]
    backlog = int(jobs * per_document)
    loading = bulk_load(vectors, backlog, policy.min_vectors, indexed=indexed)
    if loading:
        await conn.execute(query("space_bulk_load"), {"space_id": space_id})
        log.info("index_held_back", space_id=space_id, vectors=vectors, queued_vectors=backlog,
                 queued_jobs=jobs, dropping=indexed)
    return loading


async def build_indexes(url: str, policy: IndexPolicy, filling: int | None = None) -> list[int]:
    """Build the HNSW index each space needs (its kind, with ``policy``'s m and
    ef_construction), for every space with ``policy.min_vectors`` vectors whose index is
    missing, invalid or built otherwise; returns the spaces indexed. One builder at a time
    (advisory lock). Each build's maintenance_work_mem is ``policy.build_memory_mb``, else
    sized to the space, and logged with the seconds it took.

    ``filling``: the space the queue fills (the workers' configured one). While it is in a
    bulk load its index is not built, and one it has is dropped (module docstring); None
    (``ingestflow db index``): every space due is built now, whatever the queue.

    A build goes under the index's _next name and takes the index's own name once done,
    after the index it replaces is dropped, and the other kind's with it (a changed
    policy): search uses the old index until then, never an exact scan of a big space."""
    built = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        got = await (await conn.execute(query("index_try_lock"))).fetchone()
        if not got[0]:
            return built
        notices: list[str] = []  # pgvector's, e.g. "hnsw graph no longer fits into maintenance_work_mem"
        conn.add_notice_handler(lambda diagnostic: notices.append(diagnostic.message_primary or ""))
        try:
            await conn.execute(query("space_bulk_settle"))
            if filling is not None and (await (await conn.execute(query("space_indexed"), {
                    "space_id": filling})).fetchone())[0] and await _loading(conn, policy, filling, indexed=True):
                for kind in ("halfvec", "binary"):  # cheaper to build again once loaded than to insert into
                    await conn.execute(_template(f"index_drop_{kind}", space_id=filling))
                log.info("index_dropped_for_bulk_load", space_id=filling)
            cur = await conn.execute(query("spaces_without_index"), {
                "binary_min": policy.binary_min_dimensions, "m": policy.m, "ef_construction": policy.ef_construction})
            for space_id, dimensions, binary, valid in await cur.fetchall():
                if not binary and dimensions > MAX_INDEXED_DIMENSIONS:
                    continue  # pgvector's HNSW limit: such spaces are searched exactly
                cur = await conn.execute(query("space_has_vectors"),
                                         {"space_id": space_id, "min_vectors": policy.min_vectors})
                if not (await cur.fetchone())[0]:
                    continue
                kind, other = ("binary", "halfvec") if binary else ("halfvec", "binary")
                # A died build's leftovers go first: Postgres keeps inserting into them too.
                await conn.execute(_template(f"index_drop_{kind}_next", space_id=space_id))
                if valid is False:  # a build that died half-way leaves an invalid index
                    await conn.execute(_template(f"index_drop_{kind}", space_id=space_id))
                if space_id == filling and await _loading(conn, policy, space_id, indexed=False):
                    continue  # built once the load drains
                count = (await (await conn.execute(query("space_vector_count"), {"space_id": space_id})).fetchone())[0]
                memory = policy.build_memory_mb or build_memory_mb(count, dimensions, binary, policy.m)
                await conn.execute(query("set_build_memory"), {"memory": f"{memory}MB"})
                began, notices[:] = time.perf_counter(), []
                await conn.execute(_template(f"index_create_{kind}", space_id=space_id, dims=dimensions,
                                             m=policy.m, ef_construction=policy.ef_construction))
                # A graph that outgrew its memory was finished on disk, several times slower
                # (1M 1536-d vectors at the 2 GB cap: 2,170 s, against 1,093 s in 8 GB).
                spilled = any("no longer fits" in n for n in notices)
                (log.warning if spilled else log.info)(
                    "index_built", space_id=space_id, kind=kind, vectors=count, dimensions=dimensions,
                    m=policy.m, ef_construction=policy.ef_construction,
                    maintenance_work_mem_mb=memory, seconds=round(time.perf_counter() - began, 2),
                    notices=notices[:],
                    **({"advice": "raise INDEX_BUILD_MEMORY_MB for this space's next build"} if spilled else {}))
                await conn.execute(_template(f"index_drop_{kind}", space_id=space_id))  # the one it replaces
                await conn.execute(_template(f"index_rename_{kind}", space_id=space_id))
                await conn.execute(_template(f"index_drop_{other}", space_id=space_id))
                await conn.execute(query("space_bulk_settle"))
                built.append(space_id)
        finally:
            await conn.execute(query("index_unlock"))
    return built


@dataclass(frozen=True)
class VectorIndex:
    """A space's HNSW index as doctor shows it (``index`` None: searched exactly)."""

    space_id: int
    provider: str
    model: str
    dimensions: int
    vectors: int | None  # the planner's estimate; None before the space's first analyze
    index: str | None
    valid: bool | None
    m: int | None
    ef_construction: int | None
    bytes: int | None
    shared_buffers: int  # bytes: graph pages outside them are read from the OS cache
    outgrows_buffers: bool | None  # the index is larger than shared_buffers


async def warming_up(conn: AsyncConnection, space_id: int) -> bool:
    """Whether the space is in a bulk load without its index: searched exactly until the
    load drains and its index is built."""
    row = await (await conn.execute(query("space_warming"), {"space_id": space_id})).fetchone()
    return row is not None and row[0] is not None


async def vector_indexes(conn: AsyncConnection) -> list[VectorIndex]:
    cur = await conn.execute(query("vector_indexes"))
    return [VectorIndex(*row) for row in await cur.fetchall()]


async def reuse_vectors(conn: AsyncConnection, documents: Sequence[uuid.UUID], space_id: int) -> dict[uuid.UUID, int]:
    """Copy vectors of identical chunk text within each document's tenant (see the .sql);
    returns how many each document got."""
    cur = await conn.execute(query("reuse_vectors"), {"ids": list(documents), "space_id": space_id})
    return dict(await cur.fetchall())


@dataclass(frozen=True)
class Unembedded:
    """A chunk still without a vector in a space, and what its input is made of."""

    chunk_id: uuid.UUID
    document_id: uuid.UUID
    text: str  # the passage
    tokens: int  # of its input
    title: str | None  # its document's
    max_tokens: int | None  # of the chunking that cut it; None: before inputs had a context line
    heading_path: list[str] | None


@dataclass(frozen=True)
class Pending:
    """A chunk to embed: ``text`` is its input, what the model reads."""

    chunk_id: uuid.UUID
    document_id: uuid.UUID
    text: str
    tokens: int


async def chunks_without_vectors(conn: AsyncConnection, documents: Sequence[uuid.UUID],
                                 space_id: int) -> list[Unembedded]:
    ids = list(dict.fromkeys(documents))  # each document's chunks once, in first-seen order
    cur = await conn.execute(query("chunks_without_vectors"), {"ids": ids, "space_id": space_id})
    return [Unembedded(*row) for row in await cur.fetchall()]


async def delete_space_vectors(conn: AsyncConnection, documents: Sequence[uuid.UUID], space_id: int) -> int:
    """Drop these documents' vectors in one space (the fallback's, after repair)."""
    cur = await conn.execute(query("delete_space_vectors"), {"ids": list(documents), "space_id": space_id})
    return cur.rowcount


# -- each tenant's active space ----------------------------------------------------------


@dataclass(frozen=True)
class Space:
    id: int
    provider: str
    model: str
    dimensions: int

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.model} ({self.dimensions}d)"


@dataclass(frozen=True)
class Coverage:
    """How much of a tenant's current corpus a space holds."""

    covered: int  # current documents with a vector for every chunk
    current: int  # current documents
    missing_chunks: int
    missing_tokens: int

    @property
    def complete(self) -> bool:
        return self.covered == self.current


async def active_space(conn: AsyncConnection, tenant: str) -> Space | None:
    """The space the tenant's searches use; None before its first document completes."""
    row = await (await conn.execute(query("active_space"), {"tenant": tenant})).fetchone()
    return Space(*row) if row else None


async def adopt_space(conn: AsyncConnection, tenants: Sequence[str], space_id: int) -> None:
    """Tenants without an active space take this one (their first)."""
    await conn.execute(query("adopt_space"), {"tenants": list(tenants), "space_id": space_id})


async def coverage(conn: AsyncConnection, tenant: str, space_id: int) -> Coverage:
    row = await (await conn.execute(query("space_coverage"), {"tenant": tenant, "space_id": space_id})).fetchone()
    return Coverage(*row)


async def switch_if_complete(conn: AsyncConnection, tenant: str, space_id: int) -> bool:
    """Make the space the tenant's active one if it covers every current document and is
    not in a bulk load without its index. Under the tenant's switch lock, so the check and
    the switch are one step. True if switched."""
    await conn.execute(query("lock_active_space"), {"tenant": tenant})
    params = {"tenant": tenant, "space_id": space_id}
    if (await (await conn.execute(query("space_incomplete"), params)).fetchone())[0]:
        return False
    cur = await conn.execute(query("set_active_space"), params)
    return await cur.fetchone() is not None


async def tenants_switching(conn: AsyncConnection, space_id: int) -> list[str]:
    """Tenants searching another space than this one (some may be changing to it)."""
    return [row[0] for row in await (await conn.execute(query("tenants_switching"), {"space_id": space_id})).fetchall()]


async def tenant_spaces(conn: AsyncConnection, tenant: str) -> list[tuple[Space, int]]:
    """Every space holding vectors of the tenant's current documents, with its count."""
    rows = await (await conn.execute(query("tenant_spaces"), {"tenant": tenant})).fetchall()
    return [(Space(*row[:4]), row[4]) for row in rows]


async def drop_tenant_space(conn: AsyncConnection, tenant: str, space_id: int) -> int:
    """Remove the tenant's vectors in the space; returns how many. When no other tenant
    holds any there, the space's partition is truncated (metadata only, however big);
    else the tenant's rows are deleted."""
    params = {"tenant": tenant, "space_id": space_id}
    if (await (await conn.execute(query("space_shared"), params)).fetchone())[0]:
        return (await conn.execute(query("drop_tenant_space"), params)).rowcount
    cur = await conn.execute(query("space_vector_count"), params)
    count = (await cur.fetchone())[0]
    await conn.execute(_template("truncate_space", space_id=space_id))
    return count


_with_vector_types: weakref.WeakSet[AsyncConnection] = weakref.WeakSet()


async def _vector_types(conn: AsyncConnection) -> None:
    """pgvector's adapters (numpy <-> vector, binary COPY) on this connection, registered on
    first use: connections that never touch a vector skip the lookup and numpy's import."""
    if conn not in _with_vector_types:
        from pgvector.psycopg import register_vector_async

        await register_vector_async(conn)
        _with_vector_types.add(conn)


async def write_vectors(
    conn: AsyncConnection, chunk_ids: Sequence[uuid.UUID], space_id: int, vectors: np.ndarray
) -> None:
    """Binary COPY: several times faster than INSERT for rows of a few KB."""
    await _copy_vectors(conn, "copy_vectors", chunk_ids, space_id, vectors)


async def add_vectors(
    conn: AsyncConnection, chunk_ids: Sequence[uuid.UUID], space_id: int, vectors: np.ndarray
) -> set[uuid.UUID]:
    """Like ``write_vectors`` for writers without a lease on the chunks (a batch's results):
    chunks gone or already holding a vector are skipped. Returns the chunks written."""
    await conn.execute(query("stage_vectors"))
    await _copy_vectors(conn, "copy_staged_vectors", chunk_ids, space_id, vectors)
    cur = await conn.execute(query("insert_staged_vectors"))
    return {row[0] for row in await cur.fetchall()}


async def _copy_vectors(conn: AsyncConnection, statement: str, chunk_ids: Sequence[uuid.UUID], space_id: int,
                        vectors: np.ndarray) -> None:
    from pgvector import HalfVector

    await _vector_types(conn)
    async with conn.cursor().copy(query(statement)) as copy:
        copy.set_types(["uuid", "int4", "halfvec"])  # float16 on the wire: what is stored
        for cid, vec in zip(chunk_ids, vectors, strict=True):
            await copy.write_row((cid, space_id, HalfVector(vec)))


@dataclass(frozen=True)
class SearchPlan:
    """Which ranked lists a search fuses, and how (see search.sql)."""

    dense: bool  # nearest vectors in the space
    keyword: bool  # full-text matches, in text search configuration ``config``
    config: str
    candidates: int  # chunks taken from each list before fusion
    # The cosine similarity's share of a hybrid score (the rest is keyword relevance) when
    # the keyword list is flat, and when its best match stands clearly above the rest.
    vector_weight: float
    vector_weight_min: float
    heading_weight: float  # a word in the document's name or headings against one in the text (BM25)
    max_share: float  # words in more of the tenant's chunks than this are not searched by keyword
    max_rows: int  # rarest words first, while they match at most this many of the tenant's chunks
    ef_search: int  # hnsw.ef_search: graph candidates kept per step (at least ``candidates`` are)
    max_scan_tuples: int  # hnsw.max_scan_tuples: how far a filtered graph walk may go
    exact_max: int  # at most this many chunks left by the filters: compared exactly, no graph
    rerank: int  # a binary index fetches this many times ``candidates``, re-ranked by halfvec


async def search(
    conn: AsyncConnection,
    plan: SearchPlan,
    *,
    space_id: int | None,
    dimensions: int,  # the space's; any positive number when the vector list is off
    query_vector: np.ndarray | None,
    question: str,
    tenant: str,
    k: int,
    source_name: str | None = None,
    document_ids: list[uuid.UUID] | None = None,
    mime: str | None = None,
) -> list[dict[str, Any]]:
    """The tenant's ``k`` best chunks, best first, each with its ``score`` (snippets: see
    ``snippets``, for those a search returns)."""
    await _vector_types(conn)
    sql = _template("search", dims=dimensions)
    params = {"dense": plan.dense, "tenant": tenant, "source_name": source_name, "document_ids": document_ids,
              "mime": mime, "exact_max": plan.exact_max, "space_id": space_id,
              "ef_search": max(plan.ef_search, plan.candidates), "prefetch": plan.candidates * plan.rerank,
              "max_scan_tuples": plan.max_scan_tuples}
    async with conn.transaction():
        *_, exact, binary = await (await conn.execute(query("search_prepare"), params)).fetchone()
        cur = conn.cursor(row_factory=dict_row)
        # Never prepared: a generic plan cannot see which lists are switched off, nor match
        # the space's HNSW index, and scans every vector (measured: 2-4 s at 100k).
        await cur.execute(sql, prepare=False, params={
            **params, "exact": bool(exact), "binary": binary, "rerank": plan.rerank, "keyword": plan.keyword, "config": plan.config,
            "candidates": plan.candidates, "vector_weight": plan.vector_weight,
            "vector_weight_min": plan.vector_weight_min, "heading_weight": plan.heading_weight,
            "max_share": plan.max_share, "max_rows": plan.max_rows,
            "query": query_vector, "question": question, "k": k,
        })
        return await cur.fetchall()


async def snippets(conn: AsyncConnection, config: str, question: str,
                   chunk_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each chunk's best fragments with the question's words marked (snippets.sql): for
    the hits a search returns, not for every candidate it fetched."""
    cur = await conn.execute(query("snippets"), {"config": config, "question": question,
                                                 "chunk_ids": list(chunk_ids)})
    return {chunk_id: snippet for chunk_id, snippet in await cur.fetchall()}
