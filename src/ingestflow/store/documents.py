"""Documents: registration (deduplication and versioning), stages, texts and events."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingestflow.store.files import FileStore
from ingestflow.store.sql import query

NAMESPACE = uuid.UUID("6f1d7a3e-3c0b-5b7e-9a59-6f8e1b0d2c41")
JOBS_CHANNEL = "ingestflow_jobs"

STAGES = ("queued", "parsing", "parsed", "chunking", "chunked", "embedding", "embedded", "complete")


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
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"register:{tenant}/{source_name}",)
    )
    cur = conn.cursor(row_factory=dict_row)
    latest = await (await cur.execute(query("find_latest_version"), params)).fetchone()
    same = latest if latest and latest["sha256"] == digest else None
    if same is None:
        same = await (await cur.execute(query("find_live_duplicate"), params)).fetchone()
    if same is not None:
        if same["stage"] == "failed":
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


async def enqueue(conn: AsyncConnection, document: uuid.UUID) -> None:
    """Make the document's job runnable now and wake idle workers (on commit)."""
    await conn.execute(query("enqueue_job"), {"document_id": document})
    await conn.execute(f"NOTIFY {JOBS_CHANNEL}")


async def requeue(conn: AsyncConnection, document: uuid.UUID, *, reason: str) -> None:
    """Retry a failed document from its first stage with a new correlation id."""
    correlation = uuid.uuid4()
    await conn.execute(
        "UPDATE documents SET stage = 'queued', error_stage = NULL, error_code = NULL,"
        " error_message = NULL, correlation_id = %s, updated_at = now() WHERE id = %s",
        (correlation, document),
    )
    await add_event(conn, document, correlation, "retry", "queued", {"reason": reason})
    await enqueue(conn, document)


async def get(conn: AsyncConnection, document: uuid.UUID) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM documents WHERE id = %s", (document,))
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
    await conn.execute(
        "UPDATE documents SET parser = %s WHERE id = %s", (parser, document)
    )


async def load_text(conn: AsyncConnection, document: uuid.UUID) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM document_texts WHERE document_id = %s", (document,))
    row = await cur.fetchone()
    if row is None:
        raise StageConflict(f"document {document} has no parsed text")
    return row


async def make_current(conn: AsyncConnection, document: uuid.UUID) -> list[uuid.UUID]:
    """Swap this version in, retire older versions and drop their chunks; one transaction."""
    cur = await conn.execute(query("swap_current"), {"document_id": document})
    retired = [row[0] for row in await cur.fetchall()]
    if retired:
        await conn.execute("DELETE FROM chunks WHERE document_id = ANY(%s)", (retired,))
        await conn.execute("DELETE FROM document_texts WHERE document_id = ANY(%s)", (retired,))
    await conn.execute(
        "UPDATE documents d SET is_current = NOT EXISTS ("
        "  SELECT 1 FROM documents n WHERE n.tenant = d.tenant"
        "  AND n.source_name = d.source_name AND n.version > d.version AND n.is_current)"
        " WHERE d.id = %s",
        (document,),
    )
    return retired
