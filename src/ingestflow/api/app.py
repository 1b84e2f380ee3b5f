"""The HTTP API: the same settings, database and services as the CLI and the workers.

The API only registers work and reads state; ``ingestflow worker`` processes (any
number, anywhere) do the processing, coordinated through the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from ingestflow.api import docs, errors
from ingestflow.api.deps import ApiLimits, get_tenant
from ingestflow.api.logfilter import install_access_log_filter
from ingestflow.api.routes import costs, dashboard, documents, ops, search, spaces, webhooks
from ingestflow.api.schemas import ErrorResponse
from ingestflow.config import Settings
from ingestflow.operations.health import HealthCache
from ingestflow.runtime import open_runtime

POOL_SIZE = 10

_ERROR = {"model": ErrorResponse}
_COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {**_ERROR, "description": "Invalid request"},
    500: {**_ERROR, "description": "Internal error"},
}
_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {**_ERROR, "description": "Missing or invalid API key"},
    404: {**_ERROR, "description": "Not found (or another tenant's)"},
}


def create_app(settings: Settings) -> FastAPI:
    """An app that opens the runtime (pool, services) at start-up and closes it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_access_log_filter()  # after the server has configured its logging
        async with open_runtime(settings, pool_size=POOL_SIZE, long_running=True) as rt:
            rt.warm_up()
            app.state.runtime = rt
            yield

    app = FastAPI(
        title="ingestflow", version="1", lifespan=lifespan, responses=_COMMON_RESPONSES,
        docs_url=None, redoc_url=None,  # docs.install serves /docs without a CDN
        description="Documents to searchable pgvector embeddings. Authenticate with "
                    "`Authorization: Bearer <key>` (or `X-API-Key`); keys come from `ingestflow keys create`.",
    )
    app.state.limits = ApiLimits.from_settings(settings)
    app.state.health = HealthCache()
    errors.install(app)
    docs.install(app)
    authenticated = {"dependencies": [Depends(get_tenant)], "responses": _AUTH_RESPONSES}
    app.include_router(documents.router, **authenticated)
    app.include_router(search.router, **authenticated)
    app.include_router(costs.router, **authenticated)
    app.include_router(spaces.router, **authenticated)
    app.include_router(dashboard.router)  # the page is public; its JSON route takes the key itself
    app.include_router(webhooks.router)
    app.include_router(ops.router)
    return app


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API with uvicorn until interrupted (``ingestflow serve``)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port,
                log_level=settings.log_level.lower(), proxy_headers=True, server_header=False)
