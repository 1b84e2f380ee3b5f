"""One error shape for every failure: ``{"error": {"code": "...", "message": "..."}}``.

Clients handle errors by ``code``; the message is for people. Unexpected exceptions answer
a bare 500 ``internal_error`` (details go to the log, never into the response, since they
may hold data or secrets).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingestflow.logging import get_logger
from ingestflow.operations import bounds
from ingestflow.operations.errors import Refused

log = get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "too_large",
    415: "unsupported_media_type", 422: "invalid_request", 429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """Raised by routes and dependencies; rendered in the one error shape."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


STATUS_OF = {"invalid": 400, "not_found": 404, "conflict": 409, "unsupported": 415, "limit": 429,
             "unavailable": 503}


def refused(exc: Refused) -> ApiError:
    """An operation's refusal, in HTTP: the kind picks the status, code and message stay."""
    headers = None if exc.retry_after is None else {"Retry-After": str(max(1, int(exc.retry_after)))}
    return ApiError(STATUS_OF[exc.kind], exc.code, exc.message, headers=headers)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "Invalid request."


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(Refused)
    async def refused_error(request: Request, exc: Refused) -> JSONResponse:
        error = refused(exc)
        return _response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A field checked by the operations' own rule keeps its code and status (schemas.bound).
        ruled = next((e for e in exc.errors() if e.get("type") in bounds.CODES), None)
        if ruled is not None:
            return _response(STATUS_OF["invalid"], ruled["type"], ruled["msg"])
        return _response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return _response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path, method=request.method)
        return _response(500, "internal_error", "Internal server error.")
