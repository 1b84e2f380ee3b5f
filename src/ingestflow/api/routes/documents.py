"""Documents: upload, list, inspect, chunks, retry and delete; always within the caller's tenant."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from psycopg.rows import dict_row

from ingestflow.api import pagination, schemas
from ingestflow.api.deps import LimitsDep, RuntimeDep, TenantDep
from ingestflow.api.errors import ApiError, not_found
from ingestflow.api.limits import admit_upload, check_active, check_upload, lock_tenant
from ingestflow.api.redaction import scrub
from ingestflow.api.upload import FILE_FIELD, read_upload
from ingestflow.errors import PermanentError
from ingestflow.pipeline.detect import detect_mime
from ingestflow.pipeline.ingest import check_source_name
from ingestflow.store import documents
from ingestflow.store.documents import STAGES
from ingestflow.store.sql import query

router = APIRouter(prefix="/v1/documents", tags=["documents"])

StageParam = Annotated[str | None, Query(pattern=f"^({'|'.join((*STAGES, 'failed'))})$",
                                         description="Only documents in this stage.")]
LimitParam = Annotated[int, Query(ge=1, le=500)]
CursorParam = Annotated[str | None, Query(max_length=500)]
_BAD_CURSOR = {400: {"model": schemas.ErrorResponse, "description": "The cursor is not one this API returned"}}
EVENTS_SHOWN = 20

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": [FILE_FIELD],
            "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
        }}},
    }
}


@router.post(
    "", status_code=201, response_model=schemas.UploadResponse, openapi_extra=_UPLOAD_BODY,
    responses={
        200: {"model": schemas.UploadResponse, "description": "Duplicate: already there."},
        400: {"model": schemas.ErrorResponse,
              "description": "Empty file, unusable file name, or malformed or cut-off multipart body"},
        413: {"model": schemas.ErrorResponse, "description": "Larger than the upload limit"},
        415: {"model": schemas.ErrorResponse, "description": "Not a supported document type"},
        429: {"model": schemas.ErrorResponse, "description": "A tenant limit is reached (see Retry-After)"},
    },
    summary="Upload a document",
)
async def upload(request: Request, response: Response, rt: RuntimeDep, tenant: TenantDep,
                 limits: LimitsDep) -> schemas.UploadResponse:
    """Store the file and queue it. The type is detected from the bytes; the client's file
    name is only a label (re-uploading changed bytes under it makes a new version). The
    tenant's limits are checked before the body is read, and taken atomically after."""
    async with rt.db.pool.connection() as conn:
        await check_upload(conn, tenant, limits)
    upload = await read_upload(request, limits.max_upload_bytes)
    try:
        name = check_source_name(upload.filename)
    except PermanentError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    try:
        mime = await asyncio.to_thread(detect_mime, upload.data)
    except PermanentError as exc:
        status = 400 if exc.code == "empty_document" else 415
        raise ApiError(status, exc.code, exc.message) from None
    async with rt.db.pool.connection() as conn, conn.transaction():
        await admit_upload(conn, tenant, limits)
        reg = await documents.register(conn, tenant=tenant, source_name=name,
                                       data=upload.data, mime=mime, files=rt.files)
        doc = await documents.get(conn, reg.document_id)
    if reg.duplicate:
        response.status_code = 200
    return schemas.UploadResponse(id=reg.document_id, version=reg.version, duplicate=reg.duplicate,
                                  stage=doc["stage"] if doc else "queued")


@router.get("", response_model=schemas.DocumentPage, responses=_BAD_CURSOR, summary="List documents")
async def list_documents(rt: RuntimeDep, tenant: TenantDep, stage: StageParam = None,
                         limit: LimitParam = 50, cursor: CursorParam = None) -> schemas.DocumentPage:
    """Newest first; superseded versions are left out."""
    after_created: datetime | None = None
    after_id: uuid.UUID | None = None
    if cursor is not None:
        created, ident = pagination.decode(cursor, 2)
        try:
            after_created, after_id = datetime.fromisoformat(created), uuid.UUID(ident)
        except ValueError:
            raise ApiError(400, "invalid_cursor", "The cursor is not one this API returned.") from None
    async with rt.db.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query("api_list_documents"), {
            "tenant": tenant, "stage": stage, "after_created": after_created, "after_id": after_id,
            "limit": limit + 1})
        rows = await cur.fetchall()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = pagination.encode(page[-1]["created_at"].isoformat(), page[-1]["id"]) if more else None
    return schemas.DocumentPage(items=[schemas.DocumentSummary(**r) for r in page], next_cursor=next_cursor)


async def _document(conn: Any, document_id: uuid.UUID, tenant: str) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query("api_document"), {"document_id": document_id, "tenant": tenant})
    doc = await cur.fetchone()
    if doc is None:
        raise not_found()
    return doc


@router.get("/{document_id}", response_model=schemas.DocumentDetail, responses={404: {"model": schemas.ErrorResponse}},
            summary="One document: stage, progress, cost, error, recent events")
async def get_document(document_id: uuid.UUID, rt: RuntimeDep, tenant: TenantDep) -> schemas.DocumentDetail:
    async with rt.db.pool.connection() as conn:
        doc = await _document(conn, document_id, tenant)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query("document_cost"), {"document_id": document_id})
        costs = [schemas.DocumentCost(service=c["service"], cost_usd=float(c["cost_usd"]),
                                      units=int(c["units"]), calls=int(c["calls"]))
                 for c in await cur.fetchall()]
        await cur.execute(query("document_events"), {"document_id": document_id, "limit": EVENTS_SHOWN})
        events = [schemas.Event(**{**e, "detail": scrub(e["detail"])}) for e in await cur.fetchall()]
    chunks, embedded = int(doc["chunks"]), int(doc["chunks_embedded"])
    error = None
    if doc["stage"] == "failed":
        error = schemas.DocumentError(stage=doc["error_stage"], code=doc["error_code"],
                                      message=scrub(doc["error_message"]))
    return schemas.DocumentDetail(
        **{k: doc[k] for k in schemas.DocumentSummary.model_fields},
        parser=doc["parser"], job_state=doc["job_state"], attempts=doc["attempts"],
        deferred_reason=doc["deferred_reason"], next_attempt_at=doc["next_attempt_at"],
        progress=schemas.Progress(chunks=chunks, chunks_embedded=embedded, tokens=int(doc["tokens"]),
                                  fraction=embedded / chunks if chunks else 0.0),
        cost_usd=sum(c.cost_usd for c in costs), costs=costs, error=error, events=events,
    )


@router.get("/{document_id}/chunks", response_model=schemas.ChunkPage,
            responses={**_BAD_CURSOR, 404: {"model": schemas.ErrorResponse}},
            summary="A document's chunks, in order")
async def list_chunks(document_id: uuid.UUID, rt: RuntimeDep, tenant: TenantDep,
                      limit: LimitParam = 100, cursor: CursorParam = None) -> schemas.ChunkPage:
    after = -1
    if cursor is not None:
        (raw,) = pagination.decode(cursor, 1)
        if not raw.lstrip("-").isdigit():
            raise ApiError(400, "invalid_cursor", "The cursor is not one this API returned.")
        after = int(raw)
    async with rt.db.pool.connection() as conn:
        await _document(conn, document_id, tenant)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query("api_document_chunks"), {
            "document_id": document_id, "tenant": tenant, "after": after, "limit": limit + 1})
        rows = await cur.fetchall()
    page, more = rows[:limit], len(rows) > limit
    items = [schemas.Chunk(id=r["id"], ordinal=r["ordinal"], text=r["text"], token_count=r["token_count"],
                           pages=r["metadata"].get("pages", []),
                           heading_path=r["metadata"].get("heading_path", []), embedded=r["embedded"])
             for r in page]
    return schemas.ChunkPage(items=items, next_cursor=pagination.encode(page[-1]["ordinal"]) if more else None)


@router.post("/{document_id}/retry", response_model=schemas.RetryResponse,
             responses={404: {"model": schemas.ErrorResponse}, 409: {"model": schemas.ErrorResponse},
                        429: {"model": schemas.ErrorResponse}},
             summary="Queue a failed document again")
async def retry(document_id: uuid.UUID, rt: RuntimeDep, tenant: TenantDep,
                limits: LimitsDep) -> schemas.RetryResponse:
    async with rt.db.pool.connection() as conn, conn.transaction():
        await lock_tenant(conn, tenant)  # first, as uploads take it: no lock-order deadlock
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query("api_lock_document"), {"document_id": document_id, "tenant": tenant})
        doc = await cur.fetchone()
        if doc is None:
            raise not_found()
        if doc["stage"] != "failed":
            raise ApiError(409, "not_failed", f"Only failed documents can be retried; this one is {doc['stage']}.")
        await check_active(conn, tenant, limits.max_concurrent_jobs)
        await documents.requeue(conn, document_id, reason="retry requested via API")
    return schemas.RetryResponse(id=document_id, stage="queued")


@router.delete("/{document_id}", response_model=schemas.DeleteResponse,
               responses={404: {"model": schemas.ErrorResponse}}, summary="Delete a document")
async def delete(document_id: uuid.UUID, rt: RuntimeDep, tenant: TenantDep) -> schemas.DeleteResponse:
    """Removes the document with its chunks, vectors, text, events and job; its bytes too
    unless another document (of any tenant) has the same content. The response does not
    say which: that would tell one tenant what another has uploaded."""
    async with rt.db.pool.connection() as conn:
        async with conn.transaction():
            cur = await conn.execute(query("api_delete_document"), {"document_id": document_id, "tenant": tenant})
            row = await cur.fetchone()
        if row is None:
            raise not_found()
        # After the commit: a local file cannot be un-deleted if the transaction failed.
        async with conn.transaction():
            cur = await conn.execute(query("api_blob_referenced"), {"sha256": row[0]})
            referenced = (await cur.fetchone())[0]
            if not referenced:
                await rt.files.delete(conn, row[0])
    return schemas.DeleteResponse(id=document_id, deleted=True)
