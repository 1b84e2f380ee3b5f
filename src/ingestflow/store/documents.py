"""Documents: registration (deduplication and versioning), stages, texts and events."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingestflow.lifecycle import PIPELINE, TRANSITIONS, Stage
from ingestflow.store.files import FileStore
from ingestflow.store.sql import query

NAMESPACE = uuid.UUID("6f1d7a3e-3c0b-5b7e-9a59-6f8e1b0d2c41")
JOBS_CHANNEL = "ingestflow_jobs"

STAGES = tuple(str(s) for s in PIPELINE)


class StageConflict(Exception):
    """The document was not in the expected stage: someone else moved it."""


def document_id(tenant: str, source_name: str, version: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"doc\x00{tenant}\x00{source_name}\x00{version}")


def chunk_id(document: uuid.UUID, ordinal: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"chunk\x00{document}\x00{ordinal}")


def sha256_hex(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Registration:
    document_id: uuid.UUID
    version: int
    duplicate: bool  # the same bytes were already there: no new work
    requeued: bool = False  # a failed duplicate was queued again


async def register(
    conn: AsyncConnection,
    *,
    tenant: str,
    source_name: str,
    data: bytes,
    mime: str,
    files: FileStore,
) -> Registration:
    """Store the bytes and queue a document version, unless they are already there.

    Runs in the caller's transaction. An advisory lock on (tenant, source_name) makes
    concurrent uploads of the same name pick distinct version numbers.
    """
    digest = sha256_hex(data)
    params: dict[str, Any] = {"tenant": tenant, "source_name": source_name, "sha256": digest}
    await lock_source(conn, tenant, source_name)
    cur = conn.cursor(row_factory=dict_row)
    latest = await (await cur.execute(query("find_latest_version"), params)).fetchone()
    same = latest if latest and latest["sha256"] == digest else None
    if same is None:
        same = await (await cur.execute(query("find_live_duplicate"), params)).fetchone()
    if same is not None:
        if same["stage"] == Stage.FAILED:
            await requeue(conn, same["id"], reason="re-ingested")
            return Registration(same["id"], same["version"], duplicate=True, requeued=True)
        return Registration(same["id"], same["version"], duplicate=True)

    version = latest["version"] + 1 if latest else 1
    doc = document_id(tenant, source_name, version)
    correlation = uuid.uuid4()
    await files.put(conn, digest, data)
    await conn.execute(
        query("insert_document"),
        {**params, "id": doc, "version": version, "mime": mime, "size_bytes": len(data),
         "correlation_id": correlation},
    )
    await add_event(conn, doc, correlation, "registered", "queued", {"version": version})
    await enqueue(conn, doc)
    return Registration(doc, version, duplicate=False)


async def lock_source(conn: AsyncConnection, tenant: str, source_name: str) -> None:
    """Serialize work on one source (version numbers, the version swap) until commit."""
    await conn.execute(query("lock_source"), {"tenant": tenant, "source_name": source_name})


async def enqueue(conn: AsyncConnection, document: uuid.UUID) -> None:
    """Make the document's job runnable now and wake idle workers (on commit)."""
    await conn.execute(query("enqueue_job"), {"document_id": document})
    await conn.execute(f"NOTIFY {JOBS_CHANNEL}")


async def wake(conn: AsyncConnection, document: uuid.UUID) -> None:
    """A job waiting (deferred) on something that has now happened runs at once."""
    await conn.execute(query("wake_job"), {"document_id": document})
    await conn.execute(f"NOTIFY {JOBS_CHANNEL}")


async def requeue(conn: AsyncConnection, document: uuid.UUID, *, reason: str) -> None:
    """Retry a failed document from its first stage with a new correlation id."""
    correlation = uuid.uuid4()
    await conn.execute(query("requeue_document"), {"document_id": document, "correlation_id": correlation})
    await add_event(conn, document, correlation, "retry", Stage.QUEUED, {"reason": reason})
    await enqueue(conn, document)


async def get(conn: AsyncConnection, document: uuid.UUID) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("get_document"), {"document_id": document})
    return await cur.fetchone()


async def advance(
    conn: AsyncConnection, document: uuid.UUID, from_stages: tuple[str, ...], to_stage: str
) -> None:
    cur = await conn.execute(
        query("advance_stage"),
        {"document_id": document, "from_stages": list(from_stages), "to_stage": to_stage},
    )
    if await cur.fetchone() is None:
        raise StageConflict(f"document {document} is not in {from_stages}")


async def fail(
    conn: AsyncConnection, document: uuid.UUID, *, stage: str, code: str, message: str
) -> None:
    await conn.execute(
        query("fail_document"),
        {"document_id": document, "error_stage": stage, "error_code": code,
         "error_message": message},
    )


async def add_event(
    conn: AsyncConnection,
    document: uuid.UUID | None,
    correlation: uuid.UUID | None,
    kind: str,
    stage: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        query("insert_event"),
        {"document_id": document, "correlation_id": correlation, "kind": kind,
         "stage": stage, "detail": Jsonb(detail or {})},
    )


async def save_text(
    conn: AsyncConnection, document: uuid.UUID, markdown: str, pages: list[list[int]], parser: str
) -> None:
    await conn.execute(
        query("upsert_text"),
        {"document_id": document, "markdown": markdown, "pages": Jsonb(pages), "parser": parser},
    )
    await conn.execute(query("set_parser"), {"document_id": document, "parser": parser})


async def load_text(conn: AsyncConnection, document: uuid.UUID) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("load_text"), {"document_id": document})
    row = await cur.fetchone()
    if row is None:
        raise StageConflict(f"document {document} has no parsed text")
    return row


async def set_degraded(conn: AsyncConnection, document: uuid.UUID, degraded: bool) -> None:
    await conn.execute(query("set_degraded"), {"document_id": document, "degraded": degraded})


async def make_current(conn: AsyncConnection, document: uuid.UUID) -> list[uuid.UUID] | None:
    """Swap this version in and retire every older one (in flight or not), dropping their
    chunks; returns the retired ids. If a newer version is current already, this one is
    retired instead and None is returned. Call under ``lock_source``, in the transaction
    that completes the document."""
    if (await (await conn.execute(query("newer_current"), {"document_id": document})).fetchone())[0]:
        await conn.execute(query("supersede_document"), {"document_id": document})
        await conn.execute(query("drop_document_content"), {"ids": [document]})
        return None
    cur = await conn.execute(query("swap_current"), {"document_id": document})
    retired = await cur.fetchall()
    ids = [row[0] for row in retired]
    if ids:
        await conn.execute(query("drop_document_content"), {"ids": ids})
        for retired_id, correlation in retired:
            await add_event(conn, retired_id, correlation, "superseded", Stage.SUPERSEDED,
                            {"by": str(document)})
    await conn.execute(query("set_current"), {"document_id": document})
    return ids


def transition_rows() -> dict[str, list[str | None]]:
    """ingestflow.lifecycle's legal moves as the parameters of sync_transitions.sql."""
    return {
        "from_stages": [None if f is None else str(f) for f, _, _ in TRANSITIONS],
        "to_stages": [str(t) for _, t, _ in TRANSITIONS],
        "actors": [a for _, _, a in TRANSITIONS],
    }
