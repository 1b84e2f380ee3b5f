"""Embedding work in flight through the OpenAI Batch API (see migration 0005).

A batch row and its chunk map are written *before* the file is uploaded: if the worker
dies between the upload and recording the provider's batch id, the row says a batch may
exist (status ``submitting``), and nothing silently sends the same chunks again while it
might. Documents whose chunks sit in an open batch wait for it; whichever worker finds
them next polls it, and the one holding the row's lock applies its results, once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingestflow.store.sql import query

AWAITING_BATCH = "awaiting_batch"  # the deferred reason of a document whose chunks are in one


@dataclass(frozen=True)
class BatchChunk:
    """One input of a batch file: chunk ``chunk_id`` is input ``position`` of line ``custom_id``."""

    chunk_id: uuid.UUID
    document_id: uuid.UUID
    custom_id: str
    position: int
    tokens: int


@dataclass(frozen=True)
class OpenBatch:
    id: uuid.UUID
    tenant: str
    provider_batch_id: str | None  # None: the upload may not have happened
    status: str
    ledger_id: int | None
    inputs: int
    tokens: int
    age_seconds: float
    documents: list[uuid.UUID]


async def create(conn: AsyncConnection, batch_id: uuid.UUID, *, tenant: str, space_id: int,
                 ledger_id: int | None, chunks: Sequence[BatchChunk]) -> None:
    await conn.execute(query("insert_batch"), {
        "id": batch_id, "tenant": tenant, "space_id": space_id, "ledger_id": ledger_id,
        "inputs": len(chunks), "tokens": sum(c.tokens for c in chunks)})
    async with conn.cursor().copy(query("copy_batch_chunks")) as copy:
        for c in chunks:
            await copy.write_row((batch_id, c.chunk_id, c.document_id, c.custom_id, c.position, c.tokens))


async def submitted(conn: AsyncConnection, batch_id: uuid.UUID, provider_batch_id: str, status: str) -> None:
    await conn.execute(query("batch_submitted"), {"id": batch_id, "provider_batch_id": provider_batch_id,
                                                  "status": status})


async def waiting(conn: AsyncConnection, documents: Sequence[uuid.UUID], space_id: int) -> list[OpenBatch]:
    """Open batches of the space that hold chunks of these documents."""
    cur = await conn.execute(query("waiting_batches"), {"ids": list(documents), "space_id": space_id})
    return [OpenBatch(*row) for row in await cur.fetchall()]


async def chunk_map(conn: AsyncConnection, batch_id: uuid.UUID) -> dict[str, list[BatchChunk]]:
    """The batch's inputs by line (``custom_id``), in input order."""
    lines: dict[str, list[BatchChunk]] = {}
    cur = await conn.execute(query("batch_chunks"), {"id": batch_id})
    for custom_id, chunk_id, document_id, tokens in await cur.fetchall():
        line = lines.setdefault(custom_id, [])
        line.append(BatchChunk(chunk_id, document_id, custom_id, len(line), tokens))
    return lines


async def lock(conn: AsyncConnection, batch_id: uuid.UUID) -> bool:
    """Lock the batch's row for this transaction; False if it is closed already."""
    row = await (await conn.execute(query("lock_batch"), {"id": batch_id})).fetchone()
    return row is not None and row[0] == "open"


async def record_poll(conn: AsyncConnection, batch_id: uuid.UUID, status: str) -> None:
    await conn.execute(query("record_batch_poll"), {"id": batch_id, "status": status})


async def close(conn: AsyncConnection, batch_id: uuid.UUID, *, status: str, embedded: Sequence[uuid.UUID],
                failed: Sequence[uuid.UUID], error: str | None = None) -> None:
    """Record what became of each input (``embedded``, ``failed``, the rest never ran)."""
    await conn.execute(query("batch_outcomes"), {"id": batch_id, "embedded": list(embedded),
                                                 "failed": list(failed)})
    await conn.execute(query("close_batch"), {"id": batch_id, "status": status, "embedded": len(embedded),
                                              "error": error})


@dataclass(frozen=True)
class History:
    failed: int  # closed batches whose line for the chunk failed
    not_run: int  # closed batches that ended before running it


async def history(conn: AsyncConnection, chunk_ids: Sequence[uuid.UUID], space_id: int) -> dict[uuid.UUID, History]:
    cur = await conn.execute(query("batch_history"), {"ids": list(chunk_ids), "space_id": space_id})
    return {row[0]: History(row[1], row[2]) for row in await cur.fetchall()}


async def backlog(conn: AsyncConnection, cap: int) -> int:
    """Jobs queued or running, counted up to ``cap``."""
    return (await (await conn.execute(query("backlog"), {"cap": cap})).fetchone())[0]


async def overview(conn: AsyncConnection, tenant: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """The tenant's open batches and those closed in the last day, newest first."""
    cur = conn.cursor(row_factory=dict_row)
    return await (await cur.execute(query("batch_overview"), {"tenant": tenant, "limit": limit})).fetchall()


async def open_count(conn: AsyncConnection, tenant: str) -> int:
    return (await (await conn.execute(query("open_batch_count"), {"tenant": tenant})).fetchone())[0]


async def discard(conn: AsyncConnection, batch_id: uuid.UUID) -> None:
    """A batch whose upload failed: nothing was sent, so nothing waits for it."""
    await conn.execute(query("discard_batch"), {"id": batch_id})
