"""``ingestflow mcp``: the Model Context Protocol face, for agents (Claude Desktop, IDE
agents, agent frameworks), on the official ``mcp`` SDK.

The tools call the operations layer, as the HTTP API and the CLI do, so every rule (bounds,
tenant scoping, refusals and their codes) is the one those faces use. Over stdio the
server acts for one tenant (``--tenant``), as the CLI does; over streamable HTTP every
request needs an API key (``Authorization: Bearer`` or ``X-API-Key``) and acts for that
key's tenant only, exactly as the HTTP API does. A refusal is an MCP tool error whose
text ends with the API's error body, ``{"error": {"code", "message"}}`` (the SDK puts
"Error executing tool NAME: " before it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic_core
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.types import ASGIApp, Receive, Scope, Send

from ingestflow.operations import documents, keys
from ingestflow.operations import search as searching
from ingestflow.operations.bounds import Filters
from ingestflow.operations.errors import Refused
from ingestflow.runtime import Runtime

INSTRUCTIONS = ("Search a document collection ingested by ingestflow. `search` returns passages with their "
                "document, pages, heading path and snippet; `get_document` reads a document's passages in order.")


class Tools:
    """The tools over one runtime. ``tenant``: who a stdio session acts for; over HTTP
    each call's key decides."""

    def __init__(self, rt: Runtime, tenant: str) -> None:
        self.rt = rt
        self.tenant = tenant

    async def tenant_of(self, headers: Mapping[str, str] | None) -> str:
        if headers is None:  # stdio: the local user's configured tenant
            return self.tenant
        tenant = await tenant_for_headers(self.rt, headers)
        if tenant is None:
            raise _error("unauthorized", "A valid API key is required (Authorization: Bearer <key>).")
        return tenant

    def server(self) -> MCPServer:
        # The SDK logs each refused call at INFO: a client's mistake, not the operator's news.
        mcp = MCPServer("ingestflow", instructions=INSTRUCTIONS, log_level="WARNING")

        @mcp.tool()
        async def search(query: str, ctx: Context, k: int = 5, mode: str | None = None,
                         source_name: str | None = None, mime: str | None = None,
                         document_ids: list[str] | None = None, min_score: float | None = None) -> dict[str, Any]:
            """The k passages that best answer the query among the current documents: hybrid (default),
            vector or keyword mode; filters by source name, MIME type or document ids. Passages scoring
            below min_score (0-1; the model's default when omitted) are left out. An empty list of hits,
            with notes saying why, when nothing matches: the documents may not answer the question."""
            tenant = await self.tenant_of(ctx.headers)
            result = await _refusals(searching.search(
                self.rt, tenant, query, k=k, mode=mode, min_score=min_score,
                filters=Filters(source_name=source_name, mime=mime, document_ids=document_ids)))  # checked there
            return _jsonable(result)

        @mcp.tool()
        async def ingest(ctx: Context, text: str | None = None, name: str | None = None,
                         paths: list[str] | None = None) -> dict[str, Any]:
            """Add documents: `text` stored under `name` (a source name such as notes/meeting.md), or, over
            stdio only, files and folders by `paths` on this machine. Over stdio the documents are processed
            before the call returns; over HTTP they are queued for the workers."""
            tenant = await self.tenant_of(ctx.headers)
            local = ctx.headers is None
            if (text is None) == (paths is None):
                raise _error("invalid_request", "Give either `text` (with `name`) or `paths`.")
            if paths is not None:
                if not local:
                    raise _error("invalid_request", "`paths` names files on the server's machine: over HTTP, "
                                 "send the content as `text`.")
                submitted = await _refusals(documents.submit_paths(self.rt, [Path(p) for p in paths], tenant))
            else:
                if not name:
                    raise _error("invalid_request", "`text` needs a `name` (its source name).")
                registration = await _refusals(documents.register(self.rt, tenant, name, text.encode()))
                submitted = [documents.Submitted(Path(name), name, registration)]
            ids = [s.registration.document_id for s in submitted if s.registration is not None]
            if local and ids:
                await self.rt.drain(ids).run()
            stages = {str(r["id"]): r["stage"] for r in await documents.progress(self.rt, tenant, ids)} if ids else {}
            return {"documents": [
                {"name": s.name, "document_id": str(s.registration.document_id),
                 "stage": stages.get(str(s.registration.document_id)),
                 "duplicate": s.registration.duplicate}
                if s.registration is not None else
                {"name": s.name, "error": {"code": s.refused.code, "message": s.refused.message}}
                for s in submitted]}

        @mcp.tool()
        async def status(ctx: Context, document: str | None = None) -> dict[str, Any]:
            """Without `document`: documents by stage, the recent ones, the queue and the workers. With
            `document` (an id, an id prefix or a source name): that document's stage, progress, cost and
            recent events."""
            tenant = await self.tenant_of(ctx.headers)
            if document is None:
                return _jsonable(await _refusals(documents.overview(self.rt, tenant)))
            found = await _refusals(documents.find(self.rt, tenant, document))
            return _jsonable(await _refusals(documents.describe(self.rt, tenant, found["id"])))

        @mcp.tool()
        async def list_documents(ctx: Context, stage: str | None = None, limit: int = 50,
                                 cursor: str | None = None) -> dict[str, Any]:
            """Current documents, newest first: id, source name, version, stage, chunks, last change; `total`
            over all pages, and `next_cursor` (null on the last page) to pass as `cursor` for the rest."""
            tenant = await self.tenant_of(ctx.headers)
            found = await _refusals(documents.page(self.rt, tenant, stage=stage, cursor=cursor, limit=limit))
            total = await _refusals(documents.count(self.rt, tenant, stage=stage))
            return _jsonable({"documents": found.items, "total": total, "next_cursor": found.next_cursor})

        @mcp.tool()
        async def get_document(document: str, ctx: Context, after: int = -1, limit: int = 50) -> dict[str, Any]:
            """A document's passages in order (by id, id prefix or source name), `limit` at a time from
            after the passage numbered `after`."""
            tenant = await self.tenant_of(ctx.headers)
            found = await _refusals(documents.find(self.rt, tenant, document))
            chunks = await _refusals(documents.chunks(self.rt, tenant, found["id"], after=after, limit=limit))
            return _jsonable({"document": found, "chunks": chunks})

        return mcp


async def tenant_for_headers(rt: Runtime, headers: Mapping[str, str]) -> str | None:
    """The tenant of the request's API key, as the HTTP API reads it; None without one live key."""
    bearer = headers.get("authorization", "")
    token = keys.presented(bearer[7:].strip() if bearer.lower().startswith("bearer ") else None,
                           headers.get("x-api-key"))
    return None if token is None else await keys.tenant_for(rt.db, token)


class RequireKey:
    """ASGI middleware: an HTTP request without a live API key is answered 401, with the
    API's error body, before the MCP layer sees it."""

    def __init__(self, app: ASGIApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if await tenant_for_headers(self.rt, headers) is None:
                body = json.dumps({"error": {"code": "unauthorized", "message": "A valid API key is required "
                                                                                  "(Authorization: Bearer <key>)."}})
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body.encode()})
                return
        await self.app(scope, receive, send)


def _error(code: str, message: str) -> ToolError:
    return ToolError(json.dumps({"error": {"code": code, "message": message}}))


async def _refusals(call: Any) -> Any:
    """The operation's answer; a refusal as a tool error with the API's code."""
    try:
        return await call
    except Refused as exc:
        raise _error(exc.code, exc.message) from None


def _jsonable(value: Any) -> Any:
    return pydantic_core.to_jsonable_python(value, fallback=str)
