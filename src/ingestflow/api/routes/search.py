"""Search over the caller's current, complete documents: hybrid, vector or keyword."""

from __future__ import annotations

from fastapi import APIRouter

from ingestflow.api import schemas
from ingestflow.api.deps import RuntimeDep, TenantDep
from ingestflow.operations.bounds import Filters
from ingestflow.operations.search import search as run_search

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=schemas.SearchResponse,
             responses={400: {"model": schemas.ErrorResponse}, 503: {"model": schemas.ErrorResponse}},
             summary="Search passages")
async def search(body: schemas.SearchRequest, rt: RuntimeDep, tenant: TenantDep) -> schemas.SearchResponse:
    """The k passages that best answer the query among the tenant's current documents: by
    default nearest vectors (in the tenant's active space) and keyword matches fused; `mode`
    picks one list alone. A query without words finds nothing, with a note. 400 for arguments
    out of bounds (the code says which: query_too_long, invalid_query, invalid_k, unknown_mode,
    invalid_filters; as a local client's) or a query the model refuses, 503 while a `vector`
    search cannot embed the query (with Retry-After; a hybrid one answers from keywords
    instead, `degraded`)."""
    filters = Filters(**body.filters.model_dump()) if body.filters else Filters()
    result = await run_search(rt, tenant, body.query, k=body.k, mode=body.mode, filters=filters,
                              min_score=body.min_score)
    return schemas.SearchResponse(
        hits=[schemas.SearchHit(**vars(h)) for h in result.hits], provider=result.provider,
        model=result.model, mode=result.mode, degraded=result.degraded, notes=result.notes,
        reranker=result.reranker,
    )
