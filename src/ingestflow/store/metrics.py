"""The database-wide figures /metrics exposes, read in one go at scrape time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingestflow.store.sql import query


@dataclass(frozen=True)
class Snapshot:
    stages: list[dict[str, Any]]  # documents (latest versions) by stage
    durations: list[dict[str, Any]]  # stage timings from stage_done events
    ledger: list[dict[str, Any]]  # paid calls by service, model, unit and outcome
    breakers: list[dict[str, Any]]
    queue: dict[str, Any]


async def snapshot(conn: AsyncConnection) -> Snapshot:
    cur = conn.cursor(row_factory=dict_row)

    async def rows(name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return await (await cur.execute(query(name), params or {})).fetchall()

    return Snapshot(
        stages=await rows("metrics_stages"), durations=await rows("metrics_stage_durations"),
        ledger=await rows("metrics_ledger"), breakers=await rows("breaker_states"),
        queue=(await rows("queue_depth", {"tenant": None}))[0],
    )
