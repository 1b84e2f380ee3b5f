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

**Batch API** (embeddings only), outside the RPM/TPM window as the real batch pool is:

- ``POST /v1/files`` (multipart ``file`` + ``purpose``): only purpose ``batch``, a
  ``.jsonl`` name, one JSON object per line and at most 200 MB, else 400;
  ``GET /v1/files/{id}`` (metadata) and ``GET /v1/files/{id}/content`` (the bytes).
- ``POST /v1/batches`` (``input_file_id``, ``endpoint`` ``/v1/embeddings`` and
  ``completion_window`` ``24h``, else 400; ``metadata``), ``GET /v1/batches/{id}``,
  ``POST /v1/batches/{id}/cancel``.
- The file's lines are checked as the real validation step does: a batch with an empty
  file (``empty_file``), a line whose url is not the endpoint (``url_mismatch``), a second
  model (``model_mismatch``), a repeated ``custom_id`` (``duplicate_custom_id``), a line
  without custom_id, method POST or body (``invalid_request``), or more than 50,000 lines
  or embedding inputs (``too_many_tasks``) is created, then ``failed`` at its first poll
  with ``errors.data`` (code, line, message, param).
- A batch answers ``validating`` when created; each poll advances it, and so does time:
  its lines run in input order over ``batch_polls_until_done`` polls (default 3) and
  ``batch_seconds_until_done`` seconds (default 0): ``in_progress``, ``finalizing`` once
  every line ran, ``completed`` at that poll and not before those seconds. Each line is
  one embeddings request, checked and answered like ``/v1/embeddings`` (same vectors,
  usage with exact counts); a refused line (empty string, too many tokens) goes to the
  error file with its 4xx. The output file holds the 200 lines, the error file the
  others, each in shuffled order (callers must join on ``custom_id``).
- ``POST .../cancel`` makes a running batch ``cancelling``, then ``cancelled`` at the next
  poll with the lines that ran so far; a finished batch answers 400.
- ``batch_faults`` (a FaultPlan drawn once per ``POST /v1/batches``): ``failed`` (fails
  validation with ``token_limit_exceeded``), ``expired`` (runs only half its lines, then
  ``expired`` instead of ``completed``), ``429`` and ``500`` (answer the create call).
- ``line_faults`` (drawn once per line when the batch is created): ``500`` (error file,
  ``response.status_code`` 500 with an error body), ``timeout`` (error file, ``response``
  null and ``error.code`` ``request_timeout``), and ``nan``, ``wrong_dimensions``,
  ``fewer_vectors`` (output file, status 200 with usage: billed, and the client must
  catch them).
- ``batch_report_unfinished``: lines an expired or cancelled batch never ran go to the
  error file as ``batch_expired`` / ``batch_cancelled`` (the documented codes) instead of
  being in neither file.
- ``stats``: ``batch_files`` (uploads accepted), ``batches`` (created), ``batch_lines`` and
  ``batch_inputs`` (of the batches that passed validation), ``batch_tokens_billed`` (usage
  of every line that got a 200 answer, valid vectors or not: what is billed at the batch
  price), apart from the synchronous ``tokens_billed``. ``POST /_control/faults`` takes
  ``{"batch": {...}, "line": {...}}`` for the two plans. ``faults.down`` answers these
  routes with 503 too; the other ``faults`` belong to ``/v1/embeddings``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import threading
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingestflow.catalogue import EMBEDDING_MODELS
from ingestflow.services.openai_batch import COMPLETION_WINDOW, MAX_FILE_BYTES, MAX_INPUTS, MAX_REQUESTS
from ingestflow.services.openai_batch import ENDPOINT as BATCH_ENDPOINT
from ingestflow.testing._server import FakeServer
from ingestflow.testing.faults import FaultPlan, split_fault
from ingestflow.tokens import count_tokens

MODELS = {m.name: m for m in EMBEDDING_MODELS.values() if m.provider == "openai"}
DEFAULT_RPM, DEFAULT_TPM = 3_000, 1_000_000
DAY = 86_400
FINISHED = ("completed", "failed", "expired", "cancelled")
EXPIRED_SHARE = 0.5  # the share of its lines an expiring batch runs
SERVER_ERROR = "The server had an error while processing your request."


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




def _embeddings_payload(texts: list[str], model: str, dims: int, tokens: int, fault: str | None,
                        as_base64: bool) -> dict[str, Any]:
    """The body of a 200 embeddings answer, with a vector fault applied if asked."""
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
    data = [{"object": "embedding", "index": i,
             "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if as_base64 else v.tolist()}
            for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _batch_line(custom_id: str, response: dict[str, Any] | None, error: dict[str, str] | None = None) -> dict:
    """One line of an output or error file."""
    if response is not None:
        response = {"request_id": uuid.uuid4().hex, **response}
    return {"id": _new_id("batch_req_"), "custom_id": custom_id, "response": response, "error": error}


def _batch_error(code: str, message: str, line: int | None = None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "line": line, "param": param}


def _input_count(body: dict[str, Any]) -> int:
    raw = body.get("input")
    return 1 if isinstance(raw, str) else len(raw) if isinstance(raw, list) else 0


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    lines: list[dict[str, Any]] = field(default_factory=list)  # an input file's, parsed

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.data), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed",
                "expires_at": self.created_at + 30 * DAY, "status_details": None}


@dataclass
class _Batch:
    id: str
    input_file_id: str
    metadata: dict[str, str] | None
    lines: list[dict[str, Any]]
    errors: list[dict[str, Any]]  # non-empty: the batch fails validation at its first poll
    expires: bool  # runs EXPIRED_SHARE of its lines, then expires
    line_faults: list[str | None]
    created_at: int
    started: float
    status: str = "validating"
    polls: int = 0
    ran: list[tuple[dict[str, Any], bool]] = field(default_factory=list)  # (file line, answered 200), input order
    output_file_id: str | None = None
    error_file_id: str | None = None
    stamps: dict[str, int] = field(default_factory=dict)  # in_progress_at, completed_at, ...

class FakeOpenAI(FakeServer):
    def __init__(self, *, api_key: str = "sk-fake", rpm: int | None = DEFAULT_RPM, tpm: int | None = DEFAULT_TPM,
                 retry_after: float = 0.2, timeout_seconds: float = 30.0, slow_seconds: float = 0.5,
                 batch_polls_until_done: int = 3, batch_seconds_until_done: float = 0.0,
                 batch_report_unfinished: bool = False, seed: int = 0, port: int = 0) -> None:
        self.api_key = api_key
        self.rpm, self.tpm = rpm, tpm
        self.retry_after = retry_after
        self.timeout_seconds = timeout_seconds
        self.slow_seconds = slow_seconds
        self._window: deque[tuple[float, int]] = deque()  # (time, tokens) of admitted requests
        self.admitted: list[tuple[float, int]] = []  # every admitted request, for benchmarks
        self._lock = threading.Lock()
        self.batch_polls_until_done = batch_polls_until_done
        self.batch_seconds_until_done = batch_seconds_until_done
        self.batch_report_unfinished = batch_report_unfinished
        self.batch_faults = FaultPlan(seed)
        self.line_faults = FaultPlan(seed)
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self._shuffle = random.Random(seed)
        super().__init__([
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/models/{model}", self._model, methods=["GET"]),
            Route("/v1/files", self._upload, methods=["POST"]),
            Route("/v1/files/{file_id}", self._file, methods=["GET"]),
            Route("/v1/files/{file_id}/content", self._file_content, methods=["GET"]),
            Route("/v1/batches", self._create_batch, methods=["POST"]),
            Route("/v1/batches/{batch_id}", self._batch, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", self._cancel_batch, methods=["POST"]),
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

    def _denied(self, request: Request) -> Response | None:
        if self.faults.down:
            return _error(503, "The service is unavailable.", "server_error")
        return self._unauthorized(request)

    async def _models(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "system"} for m in MODELS]})

    async def _model(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
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
        fault, arg = split_fault(self.faults.next())
        if fault == "down" or fault in ("500", "503"):
            return _error(500 if fault == "500" else 503, SERVER_ERROR, "server_error")
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
        error, texts, model, dims, total = self._validate(body)
        if error is not None:
            return error
        limited = self._admit(total)
        if limited is not None:
            return limited
        if fault == "drop":
            return _Dropped()
        if fault == "malformed_json":
            self._bill(total, len(texts))
            return Response('{"object": "list", "data": [', media_type="application/json")
        payload = _embeddings_payload(texts, model, dims, total, fault, body.get("encoding_format") == "base64")
        self._bill(total, len(texts))
        return Response(json.dumps(payload, allow_nan=True), media_type="application/json",
                        headers=self._limit_headers())

    # -- Batch API -----------------------------------------------------------------------

    async def _control(self, request: Request) -> Response:
        body = await request.json()
        for key, plan in (("batch", self.batch_faults), ("line", self.line_faults)):
            if isinstance(body.get(key), dict):
                plan.configure(body.pop(key))
        self.faults.configure(body)
        return JSONResponse({"ok": True})

    async def _upload(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        form = await request.form()
        upload, purpose = form.get("file"), form.get("purpose")
        if purpose != "batch":
            return _error(400, f"This fake accepts only purpose 'batch', not {purpose!r}.",
                          "invalid_request_error", param="purpose")
        if upload is None or isinstance(upload, str):
            return _error(400, "'file' is required.", "invalid_request_error", param="file")
        data = await upload.read()
        if not (upload.filename or "").endswith(".jsonl"):
            return _error(400, "Invalid file format for Batch API. Must be .jsonl", "invalid_request_error")
        if len(data) > MAX_FILE_BYTES:
            return _error(400, f"The batch input file is larger than the {MAX_FILE_BYTES} maximum.",
                          "invalid_request_error", param="file")
        lines = []
        for number, raw in enumerate(data.splitlines(), 1):
            try:
                line = json.loads(raw) if raw.strip() else {}
            except ValueError:
                line = None
            if not isinstance(line, dict):
                return _error(400, f"Invalid file format for Batch API: line {number} is not a JSON object.",
                              "invalid_request_error", param="file")
            if line:
                lines.append(line)
        self.stats["batch_files"] += 1
        return JSONResponse(self._store(upload.filename or "input.jsonl", "batch", data, lines).describe())

    async def _file(self, request: Request) -> Response:
        found = self._denied(request) or self._find(self.files, request.path_params["file_id"], "File")
        return found if isinstance(found, Response) else JSONResponse(found.describe())

    async def _file_content(self, request: Request) -> Response:
        found = self._denied(request) or self._find(self.files, request.path_params["file_id"], "File")
        return found if isinstance(found, Response) else Response(found.data, media_type="application/octet-stream")

    async def _create_batch(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        fault = self.batch_faults.next()
        if fault == "429":
            return self._rate_limited("Rate limit reached for batch requests (fault injected).")
        if fault == "500":
            return _error(500, SERVER_ERROR, "server_error")
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        file = self.files.get(str(body.get("input_file_id")))
        if file is None or file.purpose != "batch":
            return _error(400, f"Invalid 'input_file_id': {body.get('input_file_id')!r} is not a batch input file.",
                          "invalid_request_error", param="input_file_id")
        if body.get("endpoint") != BATCH_ENDPOINT:
            return _error(400, f"Invalid value for 'endpoint': this fake batches only {BATCH_ENDPOINT}.",
                          "invalid_request_error", param="endpoint")
        if body.get("completion_window") != COMPLETION_WINDOW:
            return _error(400, f"Invalid value for 'completion_window': only {COMPLETION_WINDOW} is supported.",
                          "invalid_request_error", param="completion_window")
        metadata = body.get("metadata")
        if metadata is not None and not (isinstance(metadata, dict) and len(metadata) <= 16 and all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
            return _error(400, "'metadata' must be at most 16 string pairs.", "invalid_request_error",
                          param="metadata")
        errors = self._check_lines(file.lines)
        if fault == "failed" and not errors:
            errors = [_batch_error("token_limit_exceeded", "Enqueued token limit reached for this model "
                                   "(fault injected). Wait for your running batches to finish.")]
        batch = _Batch(_new_id("batch_"), file.id, metadata, file.lines, errors, fault == "expired",
                       [None if errors else self.line_faults.next() for _ in file.lines],
                       created_at=int(time.time()), started=time.monotonic())
        self.batches[batch.id] = batch
        self.stats["batches"] += 1
        if not errors:
            self.stats["batch_lines"] += len(file.lines)
            self.stats["batch_inputs"] += sum(_input_count(line["body"]) for line in file.lines)
        return JSONResponse(self._describe(batch))

    async def _batch(self, request: Request) -> Response:
        found = self._denied(request) or self._find(self.batches, request.path_params["batch_id"], "Batch")
        if isinstance(found, Response):
            return found
        found.polls += 1
        self._advance(found)
        return JSONResponse(self._describe(found))

    async def _cancel_batch(self, request: Request) -> Response:
        found = self._denied(request) or self._find(self.batches, request.path_params["batch_id"], "Batch")
        if isinstance(found, Response):
            return found
        if found.status in FINISHED:
            return _error(400, f"Cannot cancel a batch with status '{found.status}'.", "invalid_request_error")
        self._set(found, "cancelling")  # what has run stays; the rest never will
        return JSONResponse(self._describe(found))

    def _check_lines(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What the real validation step reports, one error per offending line."""
        if not lines:
            return [_batch_error("empty_file", "The input file is empty.")]
        errors, seen, inputs, model = [], set(), 0, None
        for number, line in enumerate(lines, 1):
            body, custom_id = line.get("body"), line.get("custom_id")
            if line.get("url") != BATCH_ENDPOINT:
                errors.append(_batch_error("url_mismatch", f"The url of line {number} does not match the batch "
                                           f"endpoint {BATCH_ENDPOINT}.", number, "url"))
            elif line.get("method") != "POST" or not isinstance(body, dict) or not isinstance(custom_id, str):
                errors.append(_batch_error("invalid_request", "A line needs a custom_id, method POST, a url and "
                                           "a body object.", number))
            elif custom_id in seen:
                errors.append(_batch_error("duplicate_custom_id", f"The custom_id {custom_id!r} of line {number} "
                                           "is not unique.", number, "custom_id"))
            else:
                seen.add(custom_id)
                inputs += _input_count(body)
                model = model or body.get("model")
                if body.get("model") != model:
                    errors.append(_batch_error("model_mismatch", f"The model of line {number} differs from the "
                                               f"batch's model {model!r}: one model per batch.", number, "model"))
        if len(lines) > MAX_REQUESTS or inputs > MAX_INPUTS:
            errors.append(_batch_error("too_many_tasks", f"{len(lines)} requests with {inputs} embedding inputs: "
                                       f"at most {MAX_REQUESTS} and {MAX_INPUTS}."))
        return errors

    def _advance(self, batch: _Batch) -> None:
        """Move a polled batch along the fake's clock: polls and seconds."""
        if batch.status in FINISHED:
            return
        if batch.status == "cancelling":
            return self._finish(batch, "cancelled")
        if batch.errors:  # validation ends at the first poll
            return self._finish(batch, "failed")
        n, seconds = self.batch_polls_until_done, self.batch_seconds_until_done
        elapsed = time.monotonic() - batch.started
        work = min(1.0, 1.0 if n <= 1 else batch.polls / (n - 1), 1.0 if seconds <= 0 else elapsed / seconds)
        if batch.expires:
            work = min(work, EXPIRED_SHARE)
        while len(batch.ran) < math.floor(work * len(batch.lines)):
            line = batch.lines[len(batch.ran)]
            batch.ran.append(self._run_line(line, batch.line_faults[len(batch.ran)]))
        if batch.polls >= n and elapsed >= seconds:
            return self._finish(batch, "expired" if batch.expires else "completed")
        self._set(batch, "finalizing" if len(batch.ran) == len(batch.lines) else "in_progress")

    def _run_line(self, line: dict[str, Any], fault: str | None) -> tuple[dict[str, Any], bool]:
        """One line answered like ``POST /v1/embeddings``: (its file line, answered 200)."""
        custom_id = line["custom_id"]
        if fault == "timeout":
            return _batch_line(custom_id, None, {"code": "request_timeout",
                                                 "message": "The request timed out (fault injected)."}), False
        error, texts, model, dims, total = self._validate(line["body"])
        if error is None and fault == "500":
            error = _error(500, SERVER_ERROR, "server_error")
        if error is not None:
            return _batch_line(custom_id, {"status_code": error.status_code, "body": json.loads(error.body)}), False
        payload = _embeddings_payload(texts, model, dims, total, fault, line["body"].get("encoding_format") == "base64")
        with self._lock:
            self.stats["batch_tokens_billed"] += total
        return _batch_line(custom_id, {"status_code": 200, "body": payload}), True

    def _finish(self, batch: _Batch, status: str) -> None:
        """The batch's last status, and its output and error files in shuffled order."""
        self._set(batch, status)
        answered = [line for line, ok in batch.ran if ok]
        refused = [line for line, ok in batch.ran if not ok]
        if self.batch_report_unfinished and status in ("expired", "cancelled"):
            message = {"expired": "The request could not be executed before the completion window ended.",
                       "cancelled": "The batch was cancelled before this request executed."}[status]
            refused += [_batch_line(line["custom_id"], None, {"code": f"batch_{status}", "message": message})
                        for line in batch.lines[len(batch.ran):]]
        for lines, name in ((answered, "output_file_id"), (refused, "error_file_id")):
            if lines:
                self._shuffle.shuffle(lines)
                data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
                setattr(batch, name, self._store(f"{batch.id}_{name[:-8]}.jsonl", "batch_output", data).id)

    @staticmethod
    def _set(batch: _Batch, status: str) -> None:
        batch.status = status
        batch.stamps.setdefault(f"{status}_at", int(time.time()))

    def _describe(self, batch: _Batch) -> dict[str, Any]:
        """The Batch object, as ``GET /v1/batches/{id}`` answers it."""
        completed = sum(ok for _, ok in batch.ran)
        return {
            "id": batch.id, "object": "batch", "endpoint": BATCH_ENDPOINT,
            "errors": {"object": "list", "data": batch.errors} if batch.status == "failed" else None,
            "input_file_id": batch.input_file_id, "completion_window": COMPLETION_WINDOW, "status": batch.status,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "created_at": batch.created_at, "expires_at": batch.created_at + DAY, **batch.stamps,
            "request_counts": {"total": len(batch.lines), "completed": completed,
                               "failed": len(batch.ran) - completed},
            "metadata": batch.metadata,
        }

    def _store(self, filename: str, purpose: str, data: bytes, lines: list[dict[str, Any]] | None = None) -> _File:
        file = _File(_new_id("file-"), filename, purpose, data, int(time.time()), lines or [])
        self.files[file.id] = file
        return file

    @staticmethod
    def _find(table: dict[str, Any], key: str, kind: str) -> Any:
        if key not in table:
            return _error(404, f"No such {kind} object: {key}", "invalid_request_error", param="id")
        return table[key]

    # -- helpers -------------------------------------------------------------------------

    def _validate(self, body: Any) -> tuple[Response | None, list[str], str, int, int]:
        """A refusal like the real service's, or the texts, model, dimensions and tokens."""
        model = body.get("model") if isinstance(body, dict) else None
        if model not in MODELS:
            return _error(404, f"The model '{model}' does not exist or you do not have access to it.",
                          "invalid_request_error", "model_not_found"), [], "", 0, 0
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _error(400, "'input' must be a string or a non-empty array of strings.",
                          "invalid_request_error", param="input"), [], model, 0, 0
        if len(texts) > MODELS[model].max_inputs_per_request:
            return _error(400, f"'input' must have at most {MODELS[model].max_inputs_per_request} items.",
                          "invalid_request_error", param="input"), [], model, 0, 0
        if any(t == "" for t in texts):
            return _error(400, "'input' cannot contain empty strings.", "invalid_request_error",
                          param="input"), [], model, 0, 0
        dims = body.get("dimensions") or MODELS[model].dimensions
        if body.get("dimensions") is not None and (
                not MODELS[model].shortenable or not 1 <= dims <= MODELS[model].dimensions):
            return _error(400, "This model does not support the requested 'dimensions'.",
                          "invalid_request_error", param="dimensions"), [], model, 0, 0
        tokens = [count_tokens(t) for t in texts]
        total, spec = sum(tokens), MODELS[model]
        if total > spec.max_tokens_per_request or any(t > spec.max_input_tokens for t in tokens):
            return _error(400, f"This model's maximum context length is {spec.max_input_tokens} tokens per input "
                          f"and {spec.max_tokens_per_request} per request; you requested {total}.",
                          "invalid_request_error", param="input"), [], model, 0, 0
        return None, texts, model, dims, total

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
