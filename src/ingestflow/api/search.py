"""Search with filters (source name, document ids, type).

The plain case is ``ingestflow.search.search``. With filters the query is embedded the
same way (guarded call; in HYBRID the fallback's own space when the real model cannot
answer) and searched with ``api_search_filtered.sql``, which keeps search.sql's space
filter and typed cast, so vectors of different models are never compared.
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from ingestflow.api.schemas import SearchFilters
from ingestflow.errors import DeferredError, TransientError
from ingestflow.runtime import Runtime
from ingestflow.search import SearchResult, _hit, search
from ingestflow.services.guard import CallContext
from ingestflow.store import vectors
from ingestflow.store.sql import query
from ingestflow.tokens import count_tokens


def _active(filters: SearchFilters | None) -> dict[str, Any] | None:
    if filters is None:
        return None
    values = filters.model_dump()
    return values if any(v is not None for v in values.values()) else None


async def run_search(rt: Runtime, text: str, *, k: int, tenant: str,
                     filters: SearchFilters | None) -> SearchResult:
    active = _active(filters)
    if active is None:
        return await search(rt.db, rt.services, text, k=k, tenant=tenant)
    services = rt.services
    embedder, degraded, notes = services.embedder, False, []
    try:
        result = await services.embed_guard.call(
            lambda: embedder.embed([text]), units=count_tokens(text),
            context=CallContext(tenant=tenant), actual_units=lambda r: r.usage_tokens,
        )
    except (TransientError, DeferredError) as exc:
        if services.embedder_fallback is None:
            raise
        embedder, degraded = services.embedder_fallback, True
        notes.append(f"real embedder unavailable ({exc.code}); searched the fallback index")
        result = await embedder.embed([text])
    sql = query("api_search_filtered").replace("{dims}", str(int(embedder.dimensions)))
    async with rt.db.pool.connection() as conn:
        space_id = await vectors.ensure_space(conn, embedder.provider, embedder.model, embedder.dimensions)
        async with conn.transaction():
            await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, {"space_id": space_id, "query": result.vectors[0], "tenant": tenant,
                                    "k": k, **active})
            rows = await cur.fetchall()
    hits = [_hit(r) for r in sorted(rows, key=lambda r: r["score"], reverse=True)]
    return SearchResult(hits, embedder.provider, embedder.model, degraded, notes)
