"""One tenant's flood of refused uploads against another tenant's searches (issue 28.17).

    .venv/bin/python bench/flood.py [--seconds 15] [--flooders 40]

An `ingestflow serve --workers 0` process on a fresh database of the embedded server.
Tenant beta holds a few documents and searches them one query after another; tenant alpha
has used up its daily uploads (API_UPLOADS_PER_DAY=1), so every upload it sends is refused
(429) after the limit check. Prints beta's search latency (median, p95, max) alone, then
while `--flooders` threads upload for alpha as fast as they are answered, and /healthz
meanwhile. Figures are printed; nothing is asserted (the target is in the README).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from ingestflow.config import Settings
from ingestflow.operations import keys
from ingestflow.store.database import Database
from support import fresh_database, small_docs, temporary_home

UPLOAD = b"# Tide table\n\nHigh water at the north quay is forty minutes after the south quay.\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_key(url: str, tenant: str) -> str:
    async def main() -> str:
        async with Database(url, max_size=1) as db:
            await db.pool.open()
            return await keys.create(db, tenant)

    return asyncio.run(main())


def latencies(client: httpx.Client, seconds: float, send: object) -> list[float]:
    """Milliseconds of each call of ``send`` (one after another) for ``seconds``."""
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        response = send(client)  # type: ignore[operator]
        out.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return out


def summary(label: str, ms: list[float]) -> None:
    p95 = statistics.quantiles(ms, n=20)[-1] if len(ms) >= 20 else max(ms)
    print(f"{label:<44} median {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  max {max(ms):7.1f} ms"
          f"  ({len(ms)} calls)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--flooders", type=int, default=40)
    args = parser.parse_args()
    with temporary_home() as tmp:
        work = Path(tmp)
        base = Settings(ingestflow_home=work / "home", log_level="WARNING")
        url = fresh_database(base)
        settings = base.model_copy(update={"database_url": SecretStr(url)})
        env = {**os.environ, "DATABASE_URL": url, "INGESTFLOW_HOME": str(settings.ingestflow_home),
               "LOG_LEVEL": "WARNING", "API_UPLOADS_PER_DAY": "1"}
        small_docs(work / "beta", 20)
        subprocess.run([sys.executable, "-m", "ingestflow", "ingest", "--tenant", "beta", str(work / "beta")],
                       env=env, check=True, capture_output=True)
        alpha, beta = make_key(url, "alpha"), make_key(url, "beta")
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "ingestflow", "serve", "--workers", "0", "--port", str(port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base_url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base_url, timeout=60) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError("the server did not start")
                    time.sleep(0.1)
                client.post("/v1/documents", headers={"Authorization": f"Bearer {alpha}"},
                            files={"file": ("first.md", UPLOAD)}).raise_for_status()  # alpha's one upload

                def search(c: httpx.Client) -> httpx.Response:
                    return c.post("/v1/search", headers={"Authorization": f"Bearer {beta}"},
                                  json={"query": "delivery to depot arrived late", "k": 5})

                def health(c: httpx.Client) -> httpx.Response:
                    return c.get("/healthz")

                summary("beta's searches, alone", latencies(client, args.seconds / 3, search))
                stop = threading.Event()
                refused = [0]

                def flood(i: int) -> None:
                    with httpx.Client(base_url=base_url, timeout=60) as own:
                        n = 0
                        while not stop.is_set():
                            n += 1
                            r = own.post("/v1/documents", headers={"Authorization": f"Bearer {alpha}"},
                                         files={"file": (f"f{i}-{n}.md", UPLOAD + f"{i}-{n}".encode())})
                            refused[0] += r.status_code == 429

                threads = [threading.Thread(target=flood, args=(i,)) for i in range(args.flooders)]
                for t in threads:
                    t.start()
                time.sleep(1.0)  # the flood is under way
                try:
                    summary(f"beta's searches, alpha flooding ({args.flooders} uploaders)",
                            latencies(client, args.seconds, search))
                    summary("/healthz, alpha flooding", latencies(client, args.seconds / 3, health))
                finally:
                    stop.set()
                    for t in threads:
                        t.join()
                print(f"alpha's uploads refused (429): {refused[0]}")
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
