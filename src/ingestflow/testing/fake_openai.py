"""A fake OpenAI embeddings API on loopback, speaking the real wire format.

    with FakeOpenAI(api_key="sk-test", tpm=100_000) as fake:
        client = AsyncOpenAI(api_key="sk-test", base_url=fake.url)
        fake.faults.inject("429", "nan")      # the next two requests fail that way
        fake.faults.inject("slow:2.5")        # a kind may carry seconds: slow, 429, timeout
        fake.faults.set_rate(0.3, ["500", "timeout"], seed=1)

Speaks ``POST /v1/embeddings`` (float or base64 vectors, usage with exact cl100k_base
counts, ``x-ratelimit-*`` headers, OpenAI error bodies) and ``GET /v1/models[/{id}]``.
Vectors are deterministic per text. Enforces the per-request limits of the model's
catalogue entry (2048 inputs, 8191 tokens per input, 300,000 per request; the same numbers
the client packs to, so an off-by-one shows here), no empty strings, and RPM/TPM limits over a sliding
minute (a low tier's 3,000 RPM and 1,000,000 TPM unless told otherwise; ``None`` turns a
limit and its headers off). Faults: 429 (Retry-After), 500, 503, slow, timeout, drop
(connection closed mid-response), malformed_json, wrong_dimensions, nan, fewer_vectors,
insufficient_quota, and ``faults.down``. ``stats`` counts what it saw: ``requests``,
``status_<code>``, ``dropped``, ``rate_limited``, ``inputs`` and ``tokens_billed`` (the
usage of every answered request, including bodies the client cannot read, as the real
service bills them). ``POST /_control/faults`` and ``GET /_control/stats`` drive it from
another process (``ingestflow fake-providers``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import zlib
from collections import deque
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingestflow.catalogue import EMBEDDING_MODELS
from ingestflow.testing._server import FakeServer
from ingestflow.tokens import count_tokens

MODELS = {m.name: m for m in EMBEDDING_MODELS.values() if m.provider == "openai"}
DEFAULT_RPM, DEFAULT_TPM = 3_000, 1_000_000


def fake_vector(text: str, dims: int, model: str) -> np.ndarray:
    """Deterministic unit vector for (model, text); ``dims`` shortens it like v3 models do."""
    rng = np.random.default_rng(zlib.crc32(f"{model}\x00{text}".encode()))
    full = rng.standard_normal(MODELS[model].dimensions if model in MODELS else dims).astype(np.float32)
    vec = full[:dims]
    return vec / np.linalg.norm(vec)


def _error(status: int, message: str, type_: str, code: str | None = None,
           param: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _masked(key: str) -> str:
    """How OpenAI echoes a wrong key: its start and last four characters."""
    return f"{key[:6]}{'*' * 20}{key[-4:]}" if len(key) > 12 else "***"


def _split(fault: str | None) -> tuple[str | None, float | None]:
    """``"slow:2.5"`` -> ``("slow", 2.5)``; a kind without an argument keeps the default."""
    if fault is None or ":" not in fault:
        return fault, None
    kind, _, arg = fault.partition(":")
    return kind, float(arg)


class FakeOpenAI(FakeServer):
    def __init__(self, *, api_key: str = "sk-fake", rpm: int | None = DEFAULT_RPM, tpm: int | None = DEFAULT_TPM,
                 retry_after: float = 0.2, timeout_seconds: float = 30.0, slow_seconds: float = 0.5,
                 seed: int = 0, port: int = 0) -> None:
        self.api_key = api_key
        self.rpm, self.tpm = rpm, tpm
        self.retry_after = retry_after
        self.timeout_seconds = timeout_seconds
        self.slow_seconds = slow_seconds
        self._window: deque[tuple[float, int]] = deque()  # (time, tokens) of admitted requests
        self.admitted: list[tuple[float, int]] = []  # every admitted request, for benchmarks
        self._lock = threading.Lock()
        super().__init__([
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/models/{model}", self._model, methods=["GET"]),
            Route("/_control/stats", self._stats, methods=["GET"]),
        ], seed=seed, port=port)

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    # -- routes --------------------------------------------------------------------------

    def _unauthorized(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if header == f"Bearer {self.api_key}":
            return None
        given = header.removeprefix("Bearer ")
        return _error(401, f"Incorrect API key provided: {_masked(given)}. You can find your API key at "
                      "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key")

    async def _models(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        if self.faults.down:
            return _error(503, "The service is unavailable.", "server_error")
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "system"} for m in MODELS]})

    async def _model(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        if self.faults.down:
            return _error(503, "The service is unavailable.", "server_error")
        model = request.path_params["model"]
        if model not in MODELS:
            return _error(404, f"The model '{model}' does not exist", "invalid_request_error", "model_not_found")
        return JSONResponse({"id": model, "object": "model", "created": 0, "owned_by": "system"})

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(dict(self.stats))

    async def _embeddings(self, request: Request) -> Response:
        self.stats["requests"] += 1
        response = await self._answer(request)
        self.stats["dropped" if isinstance(response, _Dropped) else f"status_{response.status_code}"] += 1
        return response

    async def _answer(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        fault, arg = _split(self.faults.next())
        if fault == "down" or fault in ("500", "503"):
            status = 500 if fault == "500" else 503
            return _error(status, "The server had an error while processing your request.", "server_error")
        if fault == "429":
            return self._rate_limited("Rate limit reached for requests (fault injected).", arg)
        if fault == "insufficient_quota":
            return _error(429, "You exceeded your current quota, please check your plan and billing details.",
                          "insufficient_quota", "insufficient_quota")
        if fault == "timeout":  # hang past the client's timeout; nothing is billed
            await asyncio.sleep(self.timeout_seconds if arg is None else arg)
            return _error(504, "Gateway timeout.", "server_error")
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds if arg is None else arg)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        error, texts, model, dims = self._validate(body)
        if error is not None:
            return error
        tokens = [count_tokens(t) for t in texts]
        total = sum(tokens)
        spec = MODELS[model]
        if total > spec.max_tokens_per_request or any(t > spec.max_input_tokens for t in tokens):
            return _error(400, f"This model's maximum context length is {spec.max_input_tokens} tokens per input "
                          f"and {spec.max_tokens_per_request} per request; you requested {total}.",
                          "invalid_request_error", param="input")
        limited = self._admit(total)
        if limited is not None:
            return limited
        if fault == "drop":
            return _Dropped()
        if fault == "malformed_json":
            self._bill(total, len(texts))
            return Response('{"object": "list", "data": [', media_type="application/json")
        vectors = [fake_vector(t, dims, model) for t in texts]
        if fault == "wrong_dimensions":
            vectors = [v[: max(1, dims // 2)] for v in vectors]
        if fault == "nan":
            vectors[0] = vectors[0].copy()
            vectors[0][0] = np.nan
        if fault == "fewer_vectors" and len(vectors) > 1:
            vectors = vectors[:-1]
        elif fault == "fewer_vectors":
            vectors = []
        as_base64 = body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if as_base64 else v.tolist()}
                for i, v in enumerate(vectors)]
        self._bill(total, len(texts))
        payload = {"object": "list", "data": data, "model": model,
                   "usage": {"prompt_tokens": total, "total_tokens": total}}
        return Response(json.dumps(payload, allow_nan=True), media_type="application/json",
                        headers=self._limit_headers())

    # -- helpers -------------------------------------------------------------------------

    def _validate(self, body: Any) -> tuple[Response | None, list[str], str, int]:
        model = body.get("model") if isinstance(body, dict) else None
        if model not in MODELS:
            return _error(404, f"The model '{model}' does not exist or you do not have access to it.",
                          "invalid_request_error", "model_not_found"), [], "", 0
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _error(400, "'input' must be a string or a non-empty array of strings.",
                          "invalid_request_error", param="input"), [], model, 0
        if len(texts) > MODELS[model].max_inputs_per_request:
            return _error(400, f"'input' must have at most {MODELS[model].max_inputs_per_request} items.",
                          "invalid_request_error", param="input"), [], model, 0
        if any(t == "" for t in texts):
            return _error(400, "'input' cannot contain empty strings.", "invalid_request_error",
                          param="input"), [], model, 0
        dims = body.get("dimensions") or MODELS[model].dimensions
        if body.get("dimensions") is not None and (
                not MODELS[model].shortenable or not 1 <= dims <= MODELS[model].dimensions):
            return _error(400, "This model does not support the requested 'dimensions'.",
                          "invalid_request_error", param="dimensions"), [], model, 0
        return None, texts, model, dims

    def _admit(self, tokens: int) -> Response | None:
        """Sliding-minute RPM/TPM, like the real service: 429 when a limit would be exceeded."""
        now = time.monotonic()
        with self._lock:
            while self._window and self._window[0][0] <= now - 60:
                self._window.popleft()
            used = sum(t for _, t in self._window)
            over = (self.rpm is not None and len(self._window) + 1 > self.rpm) or (
                self.tpm is not None and used + tokens > self.tpm)
            if not over:
                self._window.append((now, tokens))
                self.admitted.append((now, tokens))
                return None
            wait = 60 - (now - self._window[0][0]) if self._window else 1.0
            self.stats["rate_limited"] += 1
        return self._rate_limited("Rate limit reached for requests or tokens per min.", wait)

    def _bill(self, tokens: int, inputs: int) -> None:
        with self._lock:
            self.stats["tokens_billed"] += tokens
            self.stats["inputs"] += inputs

    def _rate_limited(self, message: str, wait: float | None = None) -> JSONResponse:
        wait = self.retry_after if wait is None else wait
        return _error(429, message, "requests", "rate_limit_exceeded", headers={
            "retry-after": f"{max(wait, 0.001):.3f}", "retry-after-ms": str(int(wait * 1000)),
            **self._limit_headers()})

    def _limit_headers(self) -> dict[str, str]:
        with self._lock:
            used = sum(t for _, t in self._window)
            count = len(self._window)
            reset = 60 - (time.monotonic() - self._window[0][0]) if self._window else 0.0
        headers = {}
        if self.rpm is not None:
            headers |= {"x-ratelimit-limit-requests": str(self.rpm),
                        "x-ratelimit-remaining-requests": str(max(0, self.rpm - count)),
                        "x-ratelimit-reset-requests": f"{reset:.3f}s"}
        if self.tpm is not None:
            headers |= {"x-ratelimit-limit-tokens": str(self.tpm),
                        "x-ratelimit-remaining-tokens": str(max(0, self.tpm - used)),
                        "x-ratelimit-reset-tokens": f"{reset:.3f}s"}
        return headers


class _Dropped(Response):
    """Promise a body, send part of it, and end: the client sees the connection die."""

    def __init__(self) -> None:
        super().__init__(status_code=200, media_type="application/json")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"100000")]})
        await send({"type": "http.response.body", "body": b'{"object": "list", "da', "more_body": True})
        raise ConnectionResetError("fault injected: connection dropped")
