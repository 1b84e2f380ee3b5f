"""Semantic search over the caller's current, complete documents."""

from __future__ import annotations

from fastapi import APIRouter

from ingestflow.api import schemas
from ingestflow.api.deps import RuntimeDep, TenantDep
from ingestflow.api.errors import ApiError
from ingestflow.errors import DeferredError, PermanentError, TransientError
from ingestflow.search import Filters
from ingestflow.search import search as run_search

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=schemas.SearchResponse,
             responses={400: {"model": schemas.ErrorResponse}, 503: {"model": schemas.ErrorResponse}},
             summary="Search passages")
async def search(body: schemas.SearchRequest, rt: RuntimeDep, tenant: TenantDep) -> schemas.SearchResponse:
    try:
        filters = Filters(**body.filters.model_dump()) if body.filters else Filters()
        result = await run_search(rt.db, rt.services, body.query, k=body.k, tenant=tenant, filters=filters)
    except PermanentError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    except (TransientError, DeferredError) as exc:
        retry = str(max(1, int(exc.retry_after or 5)))
        raise ApiError(503, exc.code, "The embedding service cannot answer now; try again later.",
                       headers={"Retry-After": retry}) from None
    return schemas.SearchResponse(
        hits=[schemas.SearchHit(**vars(h)) for h in result.hits], provider=result.provider,
        model=result.model, degraded=result.degraded, notes=result.notes,
    )
