"""Documents: upload, list, inspect, chunks, retry and delete; always within the caller's
tenant. The work is the operations layer's (operations/documents.py), shared with the CLI."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ingestflow.api import schemas
from ingestflow.api.deps import LimitsDep, RuntimeDep, TenantDep
from ingestflow.api.upload import FILE_FIELD, read_upload
from ingestflow.lifecycle import Stage
from ingestflow.operations import documents, pagination, spaces, workers
from ingestflow.operations.bounds import check_stage
from ingestflow.operations.limits import check_upload
from ingestflow.operations.pagination import MAX_PAGE
from ingestflow.redaction import scrub

router = APIRouter(prefix="/v1/documents", tags=["documents"])

# Checked by the rule every face uses: an unknown stage is 400 unknown_stage, as in Python and the CLI.
StageParam = Annotated[Stage | None, Query(description="Only documents in this stage."), schemas.bound(check_stage)]
LimitParam = Annotated[int, Query(ge=1, le=MAX_PAGE)]
CursorParam = Annotated[str | None, Query(max_length=500)]
BatchParam = Annotated[bool, Query(description="Embed through the OpenAI Batch API: half the price, within 24 hours.")]
_BAD_CURSOR = {400: {"model": schemas.ErrorResponse, "description": "The cursor is not one this API returned"}}
_NOT_FOUND = {404: {"model": schemas.ErrorResponse}}

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
        409: {"model": schemas.ErrorResponse,
              "description": "batch=true, but this deployment has no OpenAI Batch API"},
        413: {"model": schemas.ErrorResponse, "description": "Larger than the upload limit"},
        415: {"model": schemas.ErrorResponse, "description": "Not a supported document type"},
        429: {"model": schemas.ErrorResponse, "description": "A tenant limit is reached (see Retry-After)"},
    },
    summary="Upload a document",
)
async def upload(request: Request, response: Response, rt: RuntimeDep, tenant: TenantDep,
                 limits: LimitsDep, batch: BatchParam = False) -> schemas.UploadResponse:
    """Store the file and queue it. The type is detected from the bytes; the client's file
    name is only a label (re-uploading changed bytes under it makes a new version). The
    tenant's limits are checked before the body is read, and taken atomically after. The
    warning is set when no worker is alive to process it."""
    spaces.check_batch_api(rt, batch)
    async with rt.db.admission.connection() as conn:  # not the pool searches wait for
        await check_upload(conn, tenant, limits.tenant)
    upload = await read_upload(request, limits.max_upload_bytes)
    reg = await documents.register(rt, tenant, upload.filename, upload.data, limits=limits.tenant,
                                   batch_api=batch)
    if reg.duplicate:
        response.status_code = 200
    return schemas.UploadResponse(id=reg.document_id, version=reg.version, duplicate=reg.duplicate,
                                  stage=await documents.stage(rt, tenant, reg.document_id),
                                  warning=await workers.warning_for(rt, [reg.document_id]))


@router.get("", response_model=schemas.DocumentPage, responses=_BAD_CURSOR, summary="List documents")
async def list_documents(rt: RuntimeDep, tenant: TenantDep, stage: StageParam = None,
                         limit: LimitParam = 50, cursor: CursorParam = None) -> schemas.DocumentPage:
    """Newest first; superseded versions are left out unless ``stage=superseded``."""
    page = await documents.page(rt, tenant, stage=stage, cursor=cursor, limit=limit)
    return schemas.DocumentPage(items=[schemas.DocumentSummary(**r) for r in page.items],
                                next_cursor=page.next_cursor)


@router.get("/lookup", response_model=schemas.DocumentRef,
            responses={**_NOT_FOUND, 400: {"model": schemas.ErrorResponse, "description": "An ambiguous id prefix"}},
            summary="Find a document by source name or id prefix")
async def lookup(ref: Annotated[str, Query(max_length=1024, description="A source name, an id or an id prefix.")],
                 rt: RuntimeDep, tenant: TenantDep) -> schemas.DocumentRef:
    """The document a reference names, by the rule the CLI and the local Python client use
    (a source name's newest version, else an id prefix that names one document), so a
    remote client can name documents as a local one does."""
    doc = await documents.find(rt, tenant, ref)
    return schemas.DocumentRef(id=doc["id"], source_name=doc["source_name"], version=doc["version"],
                               stage=doc["stage"])


@router.get("/{document_id}", response_model=schemas.DocumentDetail, responses=_NOT_FOUND,
            summary="One document: stage, progress, cost, error, recent events")
async def get_document(document_id: uuid.UUID, rt: RuntimeDep, tenant: TenantDep) -> schemas.DocumentDetail:
    """404 for an unknown id or another tenant's; the error is set only for a failed document,
    and the events are the latest 20."""
    doc = await documents.describe(rt, tenant, document_id)
    costs = [schemas.DocumentCost(service=c["service"], cost_usd=float(c["cost_usd"]),
                                  units=int(c["units"]), calls=int(c["calls"])) for c in doc["costs"]]
    chunks, embedded = int(doc["chunks"]), int(doc["chunks_embedded"])
    error = None
    if doc["stage"] == Stage.FAILED:
        error = schemas.DocumentError(stage=doc["error_stage"], code=doc["error_code"],
                                      message=scrub(doc["error_message"]))
    return schemas.DocumentDetail(
        **{k: doc[k] for k in schemas.DocumentSummary.model_fields},
        parser=doc["parser"], job_state=doc["job_state"], attempts=doc["attempts"],
        deferred_reason=scrub(doc["deferred_reason"]), next_attempt_at=doc["next_attempt_at"],
        progress=schemas.Progress(chunks=chunks, chunks_embedded=embedded, tokens=int(doc["tokens"]),
                                  fraction=embedded / chunks if chunks else 0.0),
        cost_usd=sum(c.cost_usd for c in costs), costs=costs, error=error,
        events=[schemas.Event(**{**e, "detail": scrub(e["detail"])}) for e in doc["events"]],
        warning=await workers.warning_for(rt, [document_id]),
    )


@router.get("/{document_id}/chunks", response_model=schemas.ChunkPage, responses={**_BAD_CURSOR, **_NOT_FOUND},
            summary="A document's chunks, in order")
async def list_chunks(document_id: uuid.UUID, rt: RuntimeDep, tenant: TenantDep,
                      limit: LimitParam = 100, cursor: CursorParam = None) -> schemas.ChunkPage:
    """Ordered by position in the document, cursor-paginated; each says whether it has a vector yet."""
    after = -1
    if cursor is not None:
        (raw,) = pagination.decode(cursor, 1)
        if not raw.lstrip("-").isdigit():
            raise pagination.invalid_cursor()
        after = int(raw)
    rows = await documents.chunks(rt, tenant, document_id, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    items = [schemas.Chunk(id=r["id"], ordinal=r["ordinal"], text=r["text"], token_count=r["token_count"],
                           pages=r["metadata"].get("pages", []),
                           heading_path=r["metadata"].get("heading_path", []), embedded=r["embedded"])
             for r in page]
    return schemas.ChunkPage(items=items, next_cursor=pagination.encode(page[-1]["ordinal"]) if more else None)


@router.post("/{document_id}/retry", response_model=schemas.RetryResponse,
             responses={**_NOT_FOUND, 409: {"model": schemas.ErrorResponse}, 429: {"model": schemas.ErrorResponse}},
             summary="Queue a failed document again")
async def retry(document_id: uuid.UUID, rt: RuntimeDep, tenant: TenantDep,
                limits: LimitsDep) -> schemas.RetryResponse:
    """Only a failed document can be retried (409 otherwise); from its first stage, within the
    tenant's limit on active jobs (429)."""
    await documents.retry(rt, tenant, document_id, limits=limits.tenant)
    return schemas.RetryResponse(id=document_id, stage=Stage.QUEUED)


@router.delete("/{document_id}", response_model=schemas.DeleteResponse, responses=_NOT_FOUND,
               summary="Delete a document's source, every version")
async def delete(document_id: uuid.UUID, rt: RuntimeDep, tenant: TenantDep) -> schemas.DeleteResponse:
    """Removes every version of the document's source with their chunks, vectors, texts,
    events and jobs; their bytes too unless another document (of any tenant) has the same
    content. The response does not say which: that would tell one tenant what another
    has uploaded. The cost ledger keeps the amounts spent, never text."""
    await documents.delete(rt, tenant, document_id)
    return schemas.DeleteResponse(id=document_id, deleted=True)

