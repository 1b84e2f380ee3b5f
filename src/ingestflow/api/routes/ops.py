"""Liveness, readiness and Prometheus metrics, for orchestrators and scrapers: no API key
(they belong to no tenant). Metrics are aggregates over all tenants; an operator can still
put them behind METRICS_TOKEN."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ingestflow.api import metrics, schemas
from ingestflow.api.deps import RuntimeDep
from ingestflow.api.errors import ApiError
from ingestflow.operations import health, workers
from ingestflow.runtime import Runtime
from ingestflow.store import metrics as store_metrics
from ingestflow.store import tallies

router = APIRouter(tags=["operations"])
DB_CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", response_model=schemas.Health, summary="Liveness")
async def healthz() -> schemas.Health:
    """The process answers; says nothing about its dependencies."""
    return schemas.Health(status="ok")


@router.get("/readyz", response_model=schemas.Ready, responses={503: {"model": schemas.Ready}},
            summary="Readiness: database reachable; configured services; live workers")
async def readyz(rt: RuntimeDep, response: Response) -> schemas.Ready:
    """503 while the database does not answer within 2 s; lists the configured services and
    the live workers, with a warning when work is due and none is alive (still 200)."""
    database = await health.database_ready(rt, DB_CHECK_TIMEOUT_SECONDS)
    if not database:
        response.status_code = 503
    return schemas.Ready(status="ok" if database else "unavailable", database=database,
                         services=[schemas.ConfiguredService(**vars(s)) for s in health.configured(rt)],
                         workers=await _worker_count(rt) if database else None)


async def _worker_count(rt: Runtime) -> schemas.WorkerCount:
    found = await workers.status(rt, None)
    return schemas.WorkerCount(count=found.count, warning=found.warning)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"},
                       401: {"model": schemas.ErrorResponse,
                             "description": "METRICS_TOKEN is set and the request does not present it"}})
async def metrics_route(rt: RuntimeDep, request: Request) -> Response:
    """Aggregates only: no label or value names a tenant, a document or its source, or an
    error message. With METRICS_TOKEN set, needs ``Authorization: Bearer <token>``."""
    token = rt.settings.metrics_token
    if token is not None and token.get_secret_value():
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.get_secret_value().encode()):
            raise ApiError(401, "unauthorized", "The metrics need the operator token: "
                                                "Authorization: Bearer <METRICS_TOKEN>.",
                           headers={"WWW-Authenticate": "Bearer"})
    async with rt.db.pool.connection() as conn:
        await tallies.fold_if_due(conn)
        snapshot = await store_metrics.snapshot(conn)
    return Response(metrics.exposition(snapshot), media_type=CONTENT_TYPE_LATEST)
