"""LlamaParse result callbacks, signed per parse job (see ``ingestflow.services.webhooks``).

Whatever is wrong with a delivery (no secret configured, unknown or finished parse job,
bad or stale signature, malformed body, an event id seen before) answers the same 401 and
changes nothing: a caller learns nothing about which check failed. Everything that can
be checked before the body is read is (headers, timestamp, a parse job waiting for this
callback, the declared size), and the body is then streamed through the HMAC into a
spooled file, so unsigned or oversized bodies cost neither memory nor much else.
"""

from __future__ import annotations

import hmac
import tempfile
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError

from ingestflow.api import schemas
from ingestflow.api.deps import RuntimeDep
from ingestflow.api.errors import ApiError
from ingestflow.logging import get_logger
from ingestflow.operations.callbacks import (
    ParseResult,
    ReplayedDelivery,
    apply_parse_result,
    awaits_callback,
)
from ingestflow.services.webhooks import (
    InvalidSignature,
    Signer,
    job_secret,
    read_headers,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
log = get_logger(__name__)
MAX_BODY_BYTES = 64 * 1024 * 1024  # parsed Markdown of very large documents
SPOOL_BYTES = 1024 * 1024  # larger bodies go to a temporary file while they are checked


def _rejected(reason: str) -> ApiError:
    log.warning("webhook rejected", reason=reason)
    return ApiError(401, "unauthorized", "The delivery could not be authenticated.")


@router.post("/llamaparse", response_model=schemas.WebhookResponse,
             responses={401: {"model": schemas.ErrorResponse}, 413: {"model": schemas.ErrorResponse}},
             summary="LlamaParse result callback (signed)")
async def llamaparse(
    request: Request, rt: RuntimeDep,
    job: Annotated[str | None, Query(description="The parse job the callback belongs to.")] = None,
) -> schemas.WebhookResponse:
    """Applies a parse job's result once. Every failed check answers the same 401, whichever it was."""
    master = rt.settings.llamaparse_webhook_secret
    if master is None or not master.get_secret_value():
        raise _rejected("LLAMAPARSE_WEBHOOK_SECRET is not configured")
    try:
        key = uuid.UUID(job or "")
        timestamp, event_id, signature = read_headers(dict(request.headers))
    except ValueError:
        raise _rejected("bad parse job id") from None
    except InvalidSignature as exc:
        raise _rejected(str(exc)) from None
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", "The delivery is too large.")
    if not await awaits_callback(rt.db, key):
        raise _rejected("no parse job waits for this callback")

    signer = Signer(job_secret(master.get_secret_value(), str(key)), timestamp, event_id)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ApiError(413, "too_large", "The delivery is too large.")
            signer.update(chunk)
            body.write(chunk)
        if not hmac.compare_digest(signer.signature(), signature):
            raise _rejected("signature mismatch")
        body.seek(0)
        try:
            payload = schemas.WebhookBody.model_validate_json(body.read())
        except ValidationError:
            raise _rejected("malformed body") from None
    result = ParseResult(payload.job_id, payload.status, payload.markdown, payload.pages or 0,
                         payload.error_message)
    try:
        applied = await apply_parse_result(rt.db, key, event_id, result)
    except ReplayedDelivery:
        raise _rejected("replayed event id") from None
    return schemas.WebhookResponse(accepted=True, applied=applied)
