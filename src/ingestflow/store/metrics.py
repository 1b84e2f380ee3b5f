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
    """In one round trip (a pipeline): a scrape costs the server's work, not five waits."""
    reads = [("metrics_stages", {}), ("metrics_stage_durations", {}), ("metrics_ledger", {}),
             ("breaker_states", {}), ("queue_depth", {"tenant": None})]
    async with conn.pipeline():
        cursors = [await conn.cursor(row_factory=dict_row).execute(query(name), params) for name, params in reads]
    stages, durations, ledger, states, queue = [await cur.fetchall() for cur in cursors]
    return Snapshot(stages=stages, durations=durations, ledger=ledger, breakers=states, queue=queue[0])
