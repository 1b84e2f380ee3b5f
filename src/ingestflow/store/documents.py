"""Documents: registration (deduplication and versioning), stages, texts and events."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingestflow.lifecycle import TRANSITIONS, Stage
from ingestflow.store.files import FileStore
from ingestflow.store.sql import query

NAMESPACE = uuid.UUID("6f1d7a3e-3c0b-5b7e-9a59-6f8e1b0d2c41")
JOBS_CHANNEL = "ingestflow_jobs"


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
    await conn.execute(query("notify"), {"channel": JOBS_CHANNEL})


async def wake(conn: AsyncConnection, document: uuid.UUID) -> None:
    """A job waiting (deferred) on something that has now happened runs at once."""
    await conn.execute(query("wake_job"), {"document_id": document})
    await conn.execute(query("notify"), {"channel": JOBS_CHANNEL})


async def requeue(conn: AsyncConnection, document: uuid.UUID, *, reason: str) -> None:
    """Retry a failed document from its first stage with a new correlation id."""
    correlation = uuid.uuid4()
    await conn.execute(query("requeue_document"), {"document_id": document, "correlation_id": correlation})
    await add_event(conn, document, correlation, "retry", Stage.QUEUED, {"reason": reason})
    await enqueue(conn, document)


async def schedule_repairs(conn: AsyncConnection) -> list[tuple[uuid.UUID, uuid.UUID]] | None:
    """HYBRID repair: move every degraded complete document back to 'chunked' and return
    (id, correlation id) of each; None when another worker is scheduling right now. Run
    in the caller's transaction, which holds the scheduling lock until it commits, and
    enqueue the documents in it."""
    cur = await conn.execute(query("try_lock_repairs"))
    if not (await cur.fetchone())[0]:
        return None
    cur = await conn.execute(query("schedule_repairs"))
    return [(row[0], row[1]) for row in await cur.fetchall()]


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


# -- reads for the CLI and the API: always within one tenant ---------------------------


async def _rows(conn: AsyncConnection, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return await (await cur.execute(query(name), params)).fetchall()


async def find(conn: AsyncConnection, tenant: str, ref: str) -> dict[str, Any] | None:
    """A document by source name (its newest version), id or id prefix."""
    rows = await _rows(conn, "find_document", {"tenant": tenant, "ref": ref})
    return rows[0] if rows else None


async def detail(conn: AsyncConnection, tenant: str, document: uuid.UUID) -> dict[str, Any] | None:
    """One document with its job and progress (chunks, chunks with a vector, tokens)."""
    rows = await _rows(conn, "document_detail", {"tenant": tenant, "document_id": document})
    return rows[0] if rows else None


async def lock(conn: AsyncConnection, tenant: str | None, document: uuid.UUID) -> dict[str, Any] | None:
    """Lock a document (of one tenant, or any when None) before changing its stage."""
    rows = await _rows(conn, "lock_document", {"tenant": tenant, "document_id": document})
    return rows[0] if rows else None


async def progress(conn: AsyncConnection, tenant: str, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    return await _rows(conn, "document_progress", {"tenant": tenant, "ids": ids})


async def stage_counts(conn: AsyncConnection, tenant: str) -> dict[str, int]:
    return {r["stage"]: int(r["documents"]) for r in await _rows(conn, "stage_counts", {"tenant": tenant})}


async def recent(conn: AsyncConnection, tenant: str, limit: int) -> list[dict[str, Any]]:
    return await _rows(conn, "recent_documents", {"tenant": tenant, "limit": limit})


async def recent_errors(conn: AsyncConnection, tenant: str, limit: int) -> list[dict[str, Any]]:
    return await _rows(conn, "recent_errors", {"tenant": tenant, "limit": limit})


async def events(conn: AsyncConnection, tenant: str, document: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    return await _rows(conn, "document_events", {"tenant": tenant, "document_id": document, "limit": limit})


async def page(conn: AsyncConnection, tenant: str, *, stage: str | None, after: tuple[Any, Any] | None,
               limit: int) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (created_at, id); superseded versions left out."""
    after_created, after_id = after or (None, None)
    return await _rows(conn, "list_documents", {"tenant": tenant, "stage": stage, "after_created": after_created,
                                                "after_id": after_id, "limit": limit})


async def chunks(conn: AsyncConnection, tenant: str, document: uuid.UUID, *, after: int,
                 limit: int) -> list[dict[str, Any]]:
    """A page of the document's chunks in order, keyset-paginated on the ordinal."""
    return await _rows(conn, "document_chunks", {"tenant": tenant, "document_id": document, "after": after,
                                                 "limit": limit})


async def delete(conn: AsyncConnection, tenant: str, document: uuid.UUID) -> str | None:
    """Delete a document (chunks, vectors, texts, events and job by cascade; ledger rows
    stay); returns its content hash, or None when the tenant has no such document."""
    row = await (await conn.execute(query("delete_document"), {"tenant": tenant, "document_id": document})).fetchone()
    return row[0] if row else None


async def bytes_referenced(conn: AsyncConnection, sha256: str) -> bool:
    """Whether any document of any tenant still uses these bytes (blobs are shared)."""
    return (await (await conn.execute(query("blob_referenced"), {"sha256": sha256})).fetchone())[0]
