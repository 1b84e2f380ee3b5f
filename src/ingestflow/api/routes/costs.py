"""The caller's spend on paid services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ingestflow.api import schemas, spend
from ingestflow.api.deps import RuntimeDep, TenantDep

router = APIRouter(prefix="/v1", tags=["costs"])


@router.get("/costs", response_model=schemas.CostsResponse, summary="Spend today, this hour and by day")
async def costs(rt: RuntimeDep, tenant: TenantDep,
                days: Annotated[int, Query(ge=1, le=366)] = 30) -> schemas.CostsResponse:
    """Amounts are the tenant's own (UTC windows); limits are the configured ones, which
    all tenants share."""
    async with rt.db.pool.connection() as conn:
        services = await spend.service_spend(conn, rt.settings, tenant)
        history = await spend.by_day(conn, tenant, days)
    return schemas.CostsResponse(
        tenant=tenant, services=services, today_usd=sum(s.today_usd for s in services),
        daily_limit_total_usd=rt.settings.daily_cost_limit_total, by_day=history,
    )
