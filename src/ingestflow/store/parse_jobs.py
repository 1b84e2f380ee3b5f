"""Parse jobs waiting on a provider's callback (LlamaParse with a webhook URL).

The worker that submits one does not hold its job's lease while the provider works: the
job waits, deferred, and the callback (or the worker's fallback poll, which finds the
open parse job here) brings the result. A parse job leaves ``submitted`` exactly once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingestflow.store.sql import query


@dataclass(frozen=True)
class OpenParseJob:
    id: uuid.UUID
    provider_job_id: str
    state: str  # submitted | failed (the provider's error, waiting for the worker)
    error: str | None
    age_seconds: float


async def insert(conn: AsyncConnection, key: uuid.UUID, document: uuid.UUID, provider_job_id: str) -> None:
    await conn.execute(query("parse_job_insert"),
                       {"id": key, "document_id": document, "provider_job_id": provider_job_id})


async def open_job(conn: AsyncConnection, document: uuid.UUID) -> OpenParseJob | None:
    cur = conn.cursor(row_factory=dict_row)
    row = await (await cur.execute(query("parse_job_open"), {"document_id": document})).fetchone()
    return None if row is None else OpenParseJob(**{**row, "age_seconds": float(row["age_seconds"])})


async def lock(conn: AsyncConnection, key: uuid.UUID) -> dict | None:
    """The parse job and its document's stage, locked; None for an unknown key."""
    cur = conn.cursor(row_factory=dict_row)
    return await (await cur.execute(query("parse_job_lock"), {"id": key})).fetchone()


async def state(conn: AsyncConnection, key: uuid.UUID) -> str | None:
    row = await (await conn.execute(query("parse_job_state"), {"id": key})).fetchone()
    return None if row is None else row[0]


async def finish(conn: AsyncConnection, key: uuid.UUID, state: str, error: str | None = None) -> bool:
    """submitted -> applied | failed | abandoned (failed -> abandoned once reported)."""
    cur = await conn.execute(query("parse_job_finish"), {"id": key, "state": state, "error": error})
    return await cur.fetchone() is not None


async def record_event(conn: AsyncConnection, event_id: str, document: uuid.UUID) -> bool:
    """Replay protection: False when this (signed) event id was accepted before."""
    cur = await conn.execute(query("webhook_event_insert"), {"event_id": event_id, "document_id": document})
    return await cur.fetchone() is not None
