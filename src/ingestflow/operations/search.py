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
from ingestflow.services.router import SpaceModel
from ingestflow.store import vectors
from ingestflow.tokens import count_tokens

MAX_QUERY_CHARS = 8000  # the API schema takes its bound from here


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
    tenant's active space (the configured model's, unless a model change is under way).
    A blank query matches nothing (its vector would be noise, close to arbitrary passages).
    Refused when the query cannot be embedded: ``invalid`` for one longer than
    MAX_QUERY_CHARS or one the model refuses, ``unavailable`` while the model cannot answer."""
    if len(query) > MAX_QUERY_CHARS:
        raise Refused("invalid", "query_too_long", f"The query is longer than {MAX_QUERY_CHARS} characters; shorten it.")
    services = rt.services
    model, notes = await _space_model(rt, tenant)
    embedder, guard = model.embedder, model.guard
    if not query.strip():
        return SearchResult([], embedder.provider, embedder.model, notes=[*notes, "the query is blank: no passages"])
    degraded = False
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


async def _space_model(rt: Runtime, tenant: str) -> tuple[SpaceModel, list[str]]:
    """The model of the tenant's active space, and what the user should know about it."""
    services = rt.services
    configured = SpaceModel(services.embedder, services.embed_guard)
    async with rt.db.pool.connection() as conn:
        active = await vectors.active_space(conn, tenant)
    e = configured.embedder
    if active is None or (active.provider, active.model, active.dimensions) == (e.provider, e.model, e.dimensions):
        return configured, []
    async with rt.db.pool.connection() as conn:
        space_id = await vectors.ensure_space(conn, e.provider, e.model, e.dimensions)
        coverage = await vectors.coverage(conn, tenant, space_id)
    progress = (f"the configured model {e.provider}/{e.model} covers {coverage.covered} of {coverage.current} "
                "current documents; run `ingestflow reembed` to embed the rest (search switches to it once it "
                "covers every one)")
    old = services.for_space(active.provider, active.model, active.dimensions)
    if old is None:
        return configured, [f"the active space {active.name} cannot be queried with this configuration; "
                            f"searched the configured model instead: {progress}"]
    return old, [f"searched {active.name}: {progress}"]


def _hit(row: dict[str, Any]) -> Hit:
    meta = row["metadata"]
    return Hit(
        score=float(row["score"]), document_id=str(row["document_id"]),
        source_name=row["source_name"], version=row["version"], ordinal=row["ordinal"],
        text=row["text"], pages=meta.get("pages", []), heading_path=meta.get("heading_path", []),
    )
