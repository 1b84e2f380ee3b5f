"""The live dashboard: a static page at ``/`` and the JSON it polls."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from psycopg.rows import dict_row

from ingestflow.api import schemas, spend
from ingestflow.api.deps import RuntimeDep, TenantDep
from ingestflow.api.redaction import scrub
from ingestflow.store.sql import query

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
    async with rt.db.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query("stage_counts"), {"tenant": tenant})
        stages = {r["stage"]: int(r["documents"]) for r in await cur.fetchall()}
        await cur.execute(query("api_queue"), {"tenant": tenant})
        queue = schemas.Queue(**await cur.fetchone())
        services_spend = await spend.service_spend(conn, rt.settings, tenant)
        await cur.execute(query("breaker_states"))
        breakers = [schemas.Breaker(**r) for r in await cur.fetchall()]
        await cur.execute(query("api_recent_errors"), {"tenant": tenant, "limit": RECENT_ERRORS})
        errors = [schemas.RecentError(id=r["id"], source_name=r["source_name"], version=r["version"],
                                      stage=r["error_stage"], code=r["error_code"],
                                      message=scrub(r["error_message"]), at=r["updated_at"])
                  for r in await cur.fetchall()]
    return schemas.Dashboard(
        tenant=tenant, generated_at=datetime.now(UTC), stages=stages, documents=sum(stages.values()),
        queue=queue, spend=services_spend, daily_limit_total_usd=rt.settings.daily_cost_limit_total,
        services=await request.app.state.health.get(rt), breakers=breakers, recent_errors=errors,
    )
