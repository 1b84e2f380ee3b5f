"""Helpers for the API tests: keys, a real uvicorn server on loopback (in a thread, or an
``ingestflow serve`` process), headless Chromium, waiting on the DB."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from ingestflow.config import Settings
from ingestflow.operations import keys
from ingestflow.store.database import Database
from support import settings_env


def make_key(settings: Settings, tenant: str) -> str:
    assert settings.database_url is not None

    async def main() -> str:
        async with Database(settings.database_url.get_secret_value(), max_size=1) as db:
            await db.pool.open()
            return await keys.create(db, tenant)

    return asyncio.run(main())


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve the app with uvicorn in a thread (real HTTP on 127.0.0.1); yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def chromium(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000",
            *extra, url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)  # type: ignore[arg-type]


class Page:
    """One headless Chromium tab driven over the DevTools protocol, on the pipe Chromium
    offers (--remote-debugging-pipe: NUL-terminated JSON on its fds 3 and 4), so a test
    can click, read the live DOM and measure layout with no browser package or port."""

    def __init__(self, send: int, receive: int) -> None:
        self._send, self._receive, self._buffer, self._next_id = send, receive, b"", 0
        self._session: str | None = None

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._send, json.dumps(message).encode() + b"\0")
        while True:  # events arrive in between; only the answer to this command matters
            while b"\0" not in self._buffer:
                chunk = os.read(self._receive, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def attach(self, width: int, height: int) -> None:
        target = self.command("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.command("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.command("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                     mobile=False)

    def open(self, url: str) -> None:
        self.command("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JS expression (a promise is awaited); a thrown error fails the test."""
        result = self.command("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, condition: str, timeout_ms: int = 30_000) -> None:
        """Until the JS condition holds in the page (the page polls its own API meanwhile)."""
        held = self.evaluate(f"""new Promise((done) => {{
            const start = Date.now();
            const check = () => {{ let ok = false; try {{ ok = Boolean({condition}); }} catch (e) {{}}
              if (ok || Date.now() - start > {timeout_ms}) done(ok); else setTimeout(check, 50); }};
            check(); }})""")
        assert held, f"the page never reached: {condition}"

    def click(self, selector: str) -> None:
        """A real mouse click at the centre of the element, scrolled into view first."""
        box = self.evaluate(f"""(() => {{ const node = document.querySelector({json.dumps(selector)});
            node.scrollIntoView({{block: "center"}}); const r = node.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.command("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path: Path) -> tuple[int, int]:
        """Save the viewport as PNG; its (width, height) read from the PNG header."""
        data = base64.b64decode(self.command("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@contextmanager
def browser(tmp_path: Path, width: int, height: int) -> Iterator[Page]:
    """Headless Chromium with one tab of ``width`` x ``height`` CSS pixels."""
    assert CHROMIUM is not None
    to_chromium, from_chromium = os.pipe(), os.pipe()
    # Above 10, so bash's redirections onto 3 and 4 never overwrite one another.
    ours = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (*to_chromium, *from_chromium)]
    for fd in (*to_chromium, *from_chromium):
        os.close(fd)
    child_read, our_write, our_read, child_write = ours
    args = [CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'chromium-pipe-profile'}",
            "--remote-debugging-pipe", f"--window-size={width},{height}", "about:blank"]
    with open(tmp_path / "chromium.log", "wb") as log:
        proc = subprocess.Popen(["bash", "-c", f'exec "$@" 3<&{child_read} 4>&{child_write}', "bash", *args],
                                pass_fds=(child_read, child_write), stdout=log, stderr=subprocess.STDOUT)
    os.close(child_read)
    os.close(child_write)
    try:
        page = Page(our_write, our_read)
        page.attach(width, height)
        yield page
    finally:
        os.close(our_write)  # Chromium exits when its pipe closes
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(our_read)


def wait_for(predicate: Callable[[], Any], timeout: float = 120.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


@contextmanager
def serving(settings: Settings, log_path: Path, *args: str, **env: str) -> Iterator[str]:
    """A real ``ingestflow serve`` process on a loopback port; yields the base URL, stops it
    with SIGTERM as an orchestrator would."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ingestflow", "serve", "--port", str(port), *args],
                                env=settings_env(settings, **env), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert proc.poll() is None, log_path.read_text()
        try:
            return httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=60)
