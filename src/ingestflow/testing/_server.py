"""Run an ASGI app with uvicorn on loopback in a background thread (for the fakes)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn


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
