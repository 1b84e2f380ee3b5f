"""The HTTP API: the same settings, database and services as the CLI and the workers.

The routes register work and read state. The processing is done by workers coordinated
through the database: by default ``ingestflow serve`` runs one in its own event loop
(``--workers N`` slots), so a single process takes an upload to searchable; with
``--workers 0`` the server is API only and ``ingestflow worker`` processes (any number,
anywhere) do the work. Either way more workers may join.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from ingestflow import metrics, tracing
from ingestflow.api import docs, errors
from ingestflow.api.deps import ApiLimits, get_tenant
from ingestflow.api.logfilter import install_access_log_filter
from ingestflow.api.routes import costs, dashboard, documents, ops, search, spaces, webhooks
from ingestflow.api.schemas import ErrorResponse
from ingestflow.config import Settings
from ingestflow.logging import get_logger, redact
from ingestflow.operations.health import HealthCache
from ingestflow.runtime import open_runtime, worker_pool_size

log = get_logger(__name__)
POOL_SIZE = 10  # for requests; in-process workers get their own share on top
ADMISSION_POOL_SIZE = 2  # for uploads' limit checks, apart: refusals never queue before searches

_ERROR = {"model": ErrorResponse}
_COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {**_ERROR, "description": "Invalid request"},
    500: {**_ERROR, "description": "Internal error"},
}
_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {**_ERROR, "description": "Missing or invalid API key"},
    404: {**_ERROR, "description": "Not found (or another tenant's)"},
}


def create_app(settings: Settings, *, workers: int = 0) -> FastAPI:
    """An app that opens the runtime (pool, services) at start-up and closes it at shutdown.
    ``workers``: slots of a worker run in the app's event loop, started with it and stopped
    at shutdown as ``ingestflow worker`` stops on SIGTERM (running jobs released); 0: none."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_access_log_filter()  # after the server has configured its logging
        pool_size = POOL_SIZE + (worker_pool_size(workers) if workers else 0)
        async with open_runtime(settings, pool_size=pool_size, long_running=True,
                                admission_size=ADMISSION_POOL_SIZE) as rt, rt.sharing_model():
            rt.warm_up()
            app.state.runtime = rt
            if not workers:
                yield
                return
            worker = rt.worker(workers)
            running = asyncio.create_task(worker.run())
            running.add_done_callback(_report_crash)
            try:
                yield
            finally:
                worker.request_stop()
                await running

    app = FastAPI(
        title="ingestflow", version="1", lifespan=lifespan, responses=_COMMON_RESPONSES,
        docs_url=None, redoc_url=None,  # docs.install serves /docs without a CDN
        description="Documents to searchable pgvector embeddings. Authenticate with "
                    "`Authorization: Bearer <key>` (or `X-API-Key`); keys come from `ingestflow keys create`.",
    )
    app.state.limits = ApiLimits.from_settings(settings)
    metrics.count_here()  # its /metrics shows this process's counters
    tracing.configure()  # before the app is instrumented; open_runtime's call is then a no-op
    tracing.instrument_app(app)
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


def _report_crash(task: asyncio.Task[None]) -> None:
    """The in-process worker ended while the API kept serving: say so now, not at shutdown
    (its heartbeat stops, so the no-worker warning follows)."""
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error("in_process_worker_crashed", error=redact(f"{type(exc).__name__}: {exc}"))


def serve(settings: Settings, host: str, port: int, *, workers: int) -> None:
    """Run the API with uvicorn until interrupted (``ingestflow serve``), with a worker of
    ``workers`` slots in the same process (0: API only)."""
    import uvicorn

    uvicorn.run(create_app(settings, workers=workers), host=host, port=port,
                log_level=settings.log_level.lower(), proxy_headers=True, server_header=False)
