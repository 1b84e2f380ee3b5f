"""Query-time search: embed the query with the configured model, search its space only.

In HYBRID mode, when the real model cannot embed the query (unhealthy, out of budget),
the query is embedded by the fallback and searched in the fallback's own space, and the
answer says so: vectors of different models are never compared.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from ingestflow.errors import DeferredError, PermanentError, TransientError
from ingestflow.operations.errors import Refused
from ingestflow.runtime import Runtime
from ingestflow.services.guard import CallContext
from ingestflow.store import vectors
from ingestflow.tokens import count_tokens


@dataclass(frozen=True)
class Hit:
    score: float
    document_id: str
    source_name: str
    version: int
    ordinal: int
    text: str
    pages: list[int]
    heading_path: list[str]


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    provider: str
    model: str
    degraded: bool = False  # answered from the fallback's space
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Filters:
    source_name: str | None = None
    document_ids: list[uuid.UUID] | None = None
    mime: str | None = None


async def search(rt: Runtime, tenant: str, query: str, *, k: int = 5, filters: Filters = Filters()) -> SearchResult:
    """The ``k`` passages closest to ``query`` among the tenant's current documents, in the
    configured model's space. Refused when the query cannot be embedded: ``invalid`` for
    a query the model refuses, ``unavailable`` while the model cannot answer."""
    services = rt.services
    embedder = services.embedder
    degraded, notes = False, []
    guard = services.embed_guard
    try:
        # Only a metered call needs the count (loading the tokenizer costs a second).
        result = await guard.call(
            lambda: embedder.embed([query]), units=count_tokens(query) if guard.metered else 0,
            context=CallContext(tenant=tenant), actual_units=lambda r: r.usage_tokens,
        )
    except PermanentError as exc:
        raise Refused("invalid", exc.code, exc.message) from None
    except (TransientError, DeferredError) as exc:
        if services.embedder_fallback is None:
            raise Refused("unavailable", exc.code, "The embedding service cannot answer now; try again later.",
                          retry_after=exc.retry_after or 5) from None
        embedder, degraded = services.embedder_fallback, True
        notes.append(f"real embedder unavailable ({exc.code}); searched the fallback index")
        result = await embedder.embed([query])
    async with rt.db.pool.connection() as conn:
        space_id = await vectors.ensure_space(conn, embedder.provider, embedder.model, embedder.dimensions)
        rows = await vectors.search(
            conn, space_id=space_id, dimensions=embedder.dimensions, query_vector=result.vectors[0],
            tenant=tenant, k=k, **asdict(filters),
        )
    return SearchResult([_hit(r) for r in rows], embedder.provider, embedder.model, degraded, notes)


def _hit(row: dict[str, Any]) -> Hit:
    meta = row["metadata"]
    return Hit(
        score=float(row["score"]), document_id=str(row["document_id"]),
        source_name=row["source_name"], version=row["version"], ordinal=row["ordinal"],
        text=row["text"], pages=meta.get("pages", []), heading_path=meta.get("heading_path", []),
    )
