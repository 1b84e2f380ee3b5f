"""Spend against the limits in force: the same figures for `ingestflow costs`, `doctor`,
`GET /v1/costs` and the dashboard. Amounts are a tenant's own (or everyone's, for the
operator); limits are the deployment's, which all tenants share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingestflow.runtime import Runtime
from ingestflow.services.costs import daily_total_limit, service_limits
from ingestflow.store import costs

REPORTED_SERVICES = ("openai", "llamaparse")  # shown even before their first call


@dataclass(frozen=True)
class ServiceSpend:
    service: str
    today_usd: float
    hour_usd: float
    hour_requests: int
    today_units: int
    daily_limit_usd: float | None
    hourly_request_limit: int | None


@dataclass(frozen=True)
class Spend:
    services: list[ServiceSpend]
    today_usd: float
    daily_limit_total_usd: float | None
    tracking: bool  # COST_TRACKING_ENABLED: limits enforced, not only recorded


async def spend(rt: Runtime, tenant: str | None) -> Spend:
    """Today's and this hour's spend per service (UTC windows), next to the limits."""
    summary = {r["service"]: r for r in await rt.db.read(lambda conn: costs.summary(conn, tenant))}
    limits = service_limits(rt.settings)
    rows = []
    for name in dict.fromkeys((*REPORTED_SERVICES, *summary)):
        row, limit = summary.get(name, {}), limits.get(name)
        rows.append(ServiceSpend(
            service=name, today_usd=float(row.get("today_usd", 0)), hour_usd=float(row.get("hour_usd", 0)),
            hour_requests=int(row.get("hour_requests", 0)), today_units=int(row.get("today_units", 0)),
            daily_limit_usd=None if limit is None or limit.daily_cost_usd is None else float(limit.daily_cost_usd),
            hourly_request_limit=None if limit is None else limit.hourly_requests,
        ))
    total = daily_total_limit(rt.settings)
    return Spend(rows, sum(r.today_usd for r in rows), None if total is None else float(total),
                 rt.settings.cost_tracking_enabled)


async def by_day(rt: Runtime, tenant: str | None, days: int) -> list[dict[str, Any]]:
    return await rt.db.read(lambda conn: costs.by_day(conn, tenant, limit=days * len(REPORTED_SERVICES)))


async def by_document(rt: Runtime, tenant: str | None, limit: int = 10) -> list[dict[str, Any]]:
    return await rt.db.read(lambda conn: costs.by_document(conn, tenant, limit=limit))
