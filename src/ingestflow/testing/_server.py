"""What the fake providers share: a uvicorn server on loopback in a background thread,
fault control, counters and the context-manager lifecycle."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingestflow.testing.faults import FaultPlan


class LoopbackServer:
    """``with LoopbackServer(app) as s: s.base`` -> ``http://127.0.0.1:<port>``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="critical", lifespan="off",
                                access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, daemon=True, name="fake-provider")
        self.host = host
        self.port = port

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake provider did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


class FakeServer:
    """Base of the fakes: ``with Fake(...) as fake:`` serves ``routes`` plus
    ``POST /_control/faults``; ``fake.faults`` and ``fake.stats`` are shared with tests."""

    def __init__(self, routes: list[Route], *, seed: int = 0, port: int = 0) -> None:
        self.faults = FaultPlan(seed)
        self.stats: Counter[str] = Counter()
        self.app = Starlette(routes=[*routes, Route("/_control/faults", self._control, methods=["POST"])])
        self._server = LoopbackServer(self.app, port=port)

    def __enter__(self) -> Any:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def base(self) -> str:
        return self._server.base

    async def _control(self, request: Request) -> Response:
        self.faults.configure(await request.json())
        return JSONResponse({"ok": True})
