"""LlamaParse result callbacks, signed per job (see ``ingestflow.services.webhooks``).

Whatever is wrong with a delivery (no secret configured, bad document id, bad or stale
signature, malformed body, an event id seen before) answers the same 401 and changes
nothing: a caller learns nothing about which check failed. The event id is recorded in
the same transaction as the state change, so a replay can never apply twice, and a
duplicate delivery under a new event id is a no-op because the document has already
left ``parsing``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request
from psycopg.rows import dict_row
from pydantic import ValidationError

from ingestflow.api import schemas
from ingestflow.api.deps import RuntimeDep
from ingestflow.api.errors import ApiError
from ingestflow.services.webhooks import InvalidSignature, job_secret, verify
from ingestflow.store import documents
from ingestflow.store.sql import query

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
log = structlog.get_logger(__name__)
MAX_BODY_BYTES = 64 * 1024 * 1024  # parsed Markdown of very large documents
PARSER = "llamaparse"


def _rejected(reason: str) -> ApiError:
    log.warning("webhook rejected", reason=reason)
    return ApiError(401, "unauthorized", "The delivery could not be authenticated.")


async def _raw_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, "too_large", "The delivery is too large.")
    return bytes(body)


@router.post("/llamaparse", response_model=schemas.WebhookResponse,
             responses={401: {"model": schemas.ErrorResponse}, 413: {"model": schemas.ErrorResponse}},
             summary="LlamaParse result callback (signed)")
async def llamaparse(
    request: Request, rt: RuntimeDep,
    document: Annotated[str | None, Query(description="The document the parse job belongs to.")] = None,
) -> schemas.WebhookResponse:
    master = rt.settings.llamaparse_webhook_secret
    if master is None or not master.get_secret_value():
        raise _rejected("LLAMAPARSE_WEBHOOK_SECRET is not configured")
    try:
        document_id = uuid.UUID(document or "")
    except ValueError:
        raise _rejected("bad document id") from None
    body = await _raw_body(request)
    try:
        event_id = verify(job_secret(master.get_secret_value(), str(document_id)), dict(request.headers), body)
        payload = schemas.WebhookBody.model_validate_json(body)
    except InvalidSignature as exc:
        raise _rejected(str(exc)) from None
    except ValidationError:
        raise _rejected("malformed body") from None

    async with rt.db.pool.connection() as conn, conn.transaction():
        cur = await conn.execute(query("api_webhook_event"), {"event_id": event_id, "document_id": document_id})
        if await cur.fetchone() is None:
            raise _rejected("replayed event id")
        dcur = conn.cursor(row_factory=dict_row)
        await dcur.execute(query("api_lock_document"), {"document_id": document_id, "tenant": None})
        doc = await dcur.fetchone()
        if doc is None or doc["stage"] != "parsing":
            return schemas.WebhookResponse(accepted=True, applied=False)
        detail = {"job_id": payload.job_id, "status": payload.status, "event_id": event_id}
        if payload.status in ("SUCCESS", "PARTIAL_SUCCESS"):
            await documents.save_text(conn, document_id, payload.markdown, [], PARSER)
            await documents.advance(conn, document_id, ("parsing",), "parsed")
            await documents.add_event(conn, document_id, doc["correlation_id"], "webhook", "parsed",
                                      {**detail, "pages": payload.pages, "chars": len(payload.markdown)})
            await documents.enqueue(conn, document_id)
            return schemas.WebhookResponse(accepted=True, applied=True)
        # ERROR / CANCELED: recorded only; the worker's own polling fails the document.
        await documents.add_event(conn, document_id, doc["correlation_id"], "webhook", "parsing",
                                  {**detail, "error_message": (payload.error_message or "")[:500]})
        return schemas.WebhookResponse(accepted=True, applied=False)
