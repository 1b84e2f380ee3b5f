"""A tenant's spend from the ledger, next to the configured limits (shared by /v1/costs
and the dashboard)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingestflow.api import schemas
from ingestflow.config import Settings
from ingestflow.store.sql import query

SERVICES = ("openai", "llamaparse")


def _limits(settings: Settings) -> dict[str, tuple[float | None, int | None]]:
    return {"openai": (settings.daily_cost_limit_openai, settings.hourly_rate_limit_openai),
            "llamaparse": (settings.daily_cost_limit_llamaparse, settings.hourly_rate_limit_llamaparse)}


async def service_spend(conn: AsyncConnection, settings: Settings, tenant: str) -> list[schemas.ServiceSpend]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("costs_summary"), {"tenant": tenant})
    summary: dict[str, dict[str, Any]] = {r["service"]: r for r in await cur.fetchall()}
    limits = _limits(settings)
    names = list(dict.fromkeys((*SERVICES, *summary)))
    out = []
    for name in names:
        row = summary.get(name, {})
        daily, hourly = limits.get(name, (None, None))
        out.append(schemas.ServiceSpend(
            service=name, today_usd=float(row.get("today_usd", 0)), hour_usd=float(row.get("hour_usd", 0)),
            hour_requests=int(row.get("hour_requests", 0)), today_units=int(row.get("today_units", 0)),
            daily_limit_usd=daily, hourly_request_limit=hourly,
        ))
    return out


async def by_day(conn: AsyncConnection, tenant: str, days: int) -> list[schemas.DaySpend]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("costs_by_day"), {"tenant": tenant, "limit": days * len(SERVICES)})
    return [schemas.DaySpend(day=r["day"], service=r["service"], cost_usd=float(r["cost_usd"]),
                             units=int(r["units"]), requests=int(r["requests"])) for r in await cur.fetchall()]
