"""The live dashboard: a static page at ``/`` and the JSON it polls."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ingestflow.api import schemas
from ingestflow.api.deps import RuntimeDep, TenantDep
from ingestflow.lifecycle import Stage
from ingestflow.operations import costs, documents
from ingestflow.redaction import scrub
from ingestflow.runtime import Runtime
from ingestflow.store import breakers

router = APIRouter(tags=["dashboard"])
RECENT_ERRORS = 10


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    """The page holds no data and no key; it asks for a key and polls /v1/dashboard."""
    html = resources.files("ingestflow.api").joinpath("static", "dashboard.html").read_text()
    return HTMLResponse(html, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@router.get("/v1/dashboard", response_model=schemas.Dashboard, summary="Everything the dashboard shows",
            responses={401: {"model": schemas.ErrorResponse, "description": "Missing or invalid API key"}})
async def dashboard(request: Request, rt: RuntimeDep, tenant: TenantDep) -> schemas.Dashboard:
    """The tenant's documents by stage, queue, spend against the limits, service health,
    breakers, recent errors (scrubbed), embedding spaces, live workers and the last hour's
    throughput, in one response."""
    # Independent reads on connections of their own, at once: a poll waits for the
    # slowest, not for the sum of a dozen round trips.
    overview, throughput, spend, errors, states, health = await asyncio.gather(
        documents.overview(rt, tenant, recent=0), documents.throughput(rt, tenant), costs.spend(rt, tenant),
        documents.recent_errors(rt, tenant, RECENT_ERRORS), _breakers(rt), request.app.state.health.get(rt))
    return schemas.Dashboard(
        tenant=tenant, generated_at=datetime.now(UTC), stage_order=list(Stage), stages=overview["stages"],
        documents=sum(overview["stages"].values()), queue=schemas.Queue(**overview["queue"]),
        spend=[schemas.ServiceSpend(**vars(s)) for s in spend.services],
        daily_limit_total_usd=spend.daily_limit_total_usd,
        services=[schemas.ServiceHealth(**vars(h.service), healthy=h.healthy, detail=h.detail) for h in health],
        breakers=[schemas.Breaker(**r) for r in states],
        recent_errors=[schemas.RecentError(id=r["id"], source_name=r["source_name"], version=r["version"],
                                           stage=r["error_stage"], code=r["error_code"],
                                           message=scrub(r["error_message"]), at=r["updated_at"])
                       for r in errors],
        spaces=schemas.SpacesSummary(**{k: v for k, v in overview["spaces"].items() if k != "reembed_jobs"}),
        workers=schemas.Workers.of(overview["workers"]),
        throughput=schemas.Throughput(bucket_seconds=documents.THROUGHPUT_BUCKET_SECONDS,
                                      buckets=[schemas.ThroughputBucket(**b) for b in throughput]),
    )


async def _breakers(rt: Runtime) -> list[dict[str, Any]]:
    async with rt.db.pool.connection() as conn:
        return await breakers.states(conn)
