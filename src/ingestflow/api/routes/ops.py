"""Liveness, readiness and Prometheus metrics: unauthenticated, for orchestrators and scrapers."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ingestflow.api import health, metrics, schemas
from ingestflow.api.deps import RuntimeDep

router = APIRouter(tags=["operations"])
DB_CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", response_model=schemas.Health, summary="Liveness")
async def healthz() -> schemas.Health:
    """The process answers; says nothing about its dependencies."""
    return schemas.Health(status="ok")


@router.get("/readyz", response_model=schemas.Ready, responses={503: {"model": schemas.Ready}},
            summary="Readiness: database reachable; configured services")
async def readyz(rt: RuntimeDep, response: Response) -> schemas.Ready:
    try:
        async with rt.db.pool.connection(timeout=DB_CHECK_TIMEOUT_SECONDS) as conn:
            await conn.execute("SELECT 1")
        database = True
    except (psycopg.Error, TimeoutError, OSError):
        database = False
    if not database:
        response.status_code = 503
    return schemas.Ready(status="ok" if database else "unavailable", database=database,
                         services=health.configured(rt))


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
async def metrics_route(rt: RuntimeDep) -> Response:
    async with rt.db.pool.connection() as conn:
        snapshot = await metrics.read_snapshot(conn)
    return Response(metrics.exposition(snapshot), media_type=CONTENT_TYPE_LATEST)
