"""The caller's spend on paid services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ingestflow.api import schemas
from ingestflow.api.deps import RuntimeDep, TenantDep
from ingestflow.operations import costs

router = APIRouter(prefix="/v1", tags=["costs"])


@router.get("/costs", response_model=schemas.CostsResponse, summary="Spend today, this hour and by day")
async def get_costs(rt: RuntimeDep, tenant: TenantDep,
                    days: Annotated[int, Query(ge=1, le=366)] = 30) -> schemas.CostsResponse:
    """Amounts are the tenant's own (UTC windows); limits are the configured ones, which
    all tenants share."""
    spend = await costs.spend(rt, tenant)
    history = await costs.by_day(rt, tenant, days)
    return schemas.CostsResponse(
        tenant=tenant, services=[schemas.ServiceSpend(**vars(s)) for s in spend.services],
        today_usd=spend.today_usd, daily_limit_total_usd=spend.daily_limit_total_usd,
        by_day=[schemas.DaySpend(day=r["day"], service=r["service"], cost_usd=float(r["cost_usd"]),
                                 units=int(r["units"]), requests=int(r["requests"])) for r in history],
    )
