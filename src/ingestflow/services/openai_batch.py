"""OpenAI embeddings through the Batch API: the same vectors at half the price, within 24 hours.

A backfill (a corpus re-embedded, a new model) needs no answer in seconds, and the Batch
API bills its tokens at half the synchronous price (the catalogue's ``batch_usd_per_mtok``)
from a rate-limit pool of its own. One JSONL file of ``/v1/embeddings`` requests is
uploaded with purpose ``batch``, a batch is created on it and polled, and its output and
error files are read back.

As in the synchronous client: the SDK's retries are off (the caller decides when to poll,
retry or resubmit), every failure is a classified error whose text never holds the key,
and every line is validated like a synchronous response before a vector can be stored.
Output order is not input order, so lines are joined on ``custom_id``. A line the provider
never ran (an expired or cancelled batch) is neither succeeded nor failed: the caller
resubmits exactly what is missing.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from openai.types import CreateEmbeddingResponse

from ingestflow.errors import PermanentError, TransientError
from ingestflow.services.openai_embedder import (
    OpenAIModelClient,
    classify,
    provider_text,
    sdk_call,
    usage_tokens,
    validate_vectors,
)

ENDPOINT = "/v1/embeddings"
COMPLETION_WINDOW = "24h"  # the only window the API accepts
# The provider's per-batch limits (../shared/PROVIDERS.md), refused here before an upload
# rather than found out as a failed batch.
MAX_REQUESTS = 50_000  # lines of one input file
MAX_INPUTS = 50_000  # embedding inputs across all lines of one /v1/embeddings batch
MAX_FILE_BYTES = 200 * 1024 * 1024

BatchState = Literal["validating", "failed", "in_progress", "finalizing", "completed", "expired",
                     "cancelling", "cancelled"]
STATES: frozenset[str] = frozenset(get_args(BatchState))
FINISHED = frozenset({"completed", "expired", "cancelled", "failed"})  # nothing more will come
# Error-file codes of lines that never ran: the same as a line missing from both files.
NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})



@dataclass(frozen=True)
class BatchRequest:
    """One line of the input file: one ``/v1/embeddings`` request of several inputs."""

    custom_id: str
    texts: list[str]


@dataclass(frozen=True)
class SubmittedBatch:
    batch_id: str
    input_file_id: str
    status: BatchState


@dataclass(frozen=True)
class RequestCounts:
    total: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class BatchStatus:
    batch_id: str
    status: BatchState
    output_file_id: str | None
    error_file_id: str | None
    request_counts: RequestCounts
    errors: list[str]  # why a failed batch failed, scrubbed
    created_at: int
    expires_at: int | None

    @property
    def done(self) -> bool:
        """Nothing more will come: results() now reads everything the batch will produce."""
        return self.status in FINISHED


@dataclass(frozen=True)
class LineResult:
    vectors: np.ndarray  # float32 (n, dimensions); row i is input i of the line
    usage_tokens: int | None  # as reported; None if the provider reported none (count the texts)


@dataclass(frozen=True)
class LineFailure:
    code: str  # the failures table's code for an HTTP answer, invalid_response, or the provider's
    message: str  # scrubbed
    billed_units: int | None = None  # tokens the provider billed for an unusable answer
    permanent: bool = False  # the provider refused the request itself: resubmitting cannot help


@dataclass(frozen=True)
class BatchResults:
    succeeded: dict[str, LineResult]
    failed: dict[str, LineFailure]


class OpenAIBatchClient(OpenAIModelClient):
    """Submit, poll, read and cancel embeddings batches for one model and size."""

    async def submit(self, requests: Sequence[BatchRequest], *,
                     metadata: dict[str, str] | None = None) -> SubmittedBatch:
        """Upload the requests as one JSONL file and start a batch on it.

        Before anything is sent, ``ValueError`` names the limit the requests break, and an
        empty string is ``PermanentError("empty_input")`` as in the synchronous client. If
        the batch cannot be created after the upload, the file is left to expire (30 days
        for purpose ``batch``); a retry uploads a new one."""
        content = self._input_file(requests)
        upload = await sdk_call(self._client.files.create(
            file=("embeddings.jsonl", content, "application/jsonl"), purpose="batch"))
        batch = await sdk_call(self._client.batches.create(
            input_file_id=upload.id, endpoint=ENDPOINT, completion_window=COMPLETION_WINDOW, metadata=metadata))
        status = _status_of(batch)
        return SubmittedBatch(status.batch_id, upload.id, status.status)

    async def status(self, batch_id: str) -> BatchStatus:
        return _status_of(await sdk_call(self._client.batches.retrieve(batch_id)))

    async def cancel(self, batch_id: str) -> BatchStatus:
        """Lines already done stay in the output file; the batch goes cancelling, then cancelled."""
        return _status_of(await sdk_call(self._client.batches.cancel(batch_id)))

    async def results(self, status: BatchStatus, expected: Mapping[str, int]) -> BatchResults:
        """Every line of the output and error files, by ``custom_id``. ``expected`` maps each
        submitted ``custom_id`` to its number of inputs (to check the vector count); lines
        of other ids are ignored."""
        succeeded: dict[str, LineResult] = {}
        failed: dict[str, LineFailure] = {}
        for file_id in (status.output_file_id, status.error_file_id):
            if not file_id:
                continue
            content = await sdk_call(self._client.files.content(file_id))
            for line in _jsonl(content.content):
                custom_id = line.get("custom_id")
                if not isinstance(custom_id, str) or custom_id not in expected:
                    continue
                outcome = self._outcome(line, expected[custom_id])
                if isinstance(outcome, LineResult):
                    succeeded[custom_id] = outcome
                elif outcome is not None:
                    failed[custom_id] = outcome
        return BatchResults(succeeded, failed)

    def _input_file(self, requests: Sequence[BatchRequest]) -> bytes:
        if not requests:
            raise ValueError("a batch needs at least one request")
        if len(requests) > MAX_REQUESTS:
            raise ValueError(f"{len(requests)} requests: a batch file holds at most {MAX_REQUESTS}")
        inputs = sum(len(r.texts) for r in requests)
        if inputs > MAX_INPUTS:
            raise ValueError(f"{inputs} embedding inputs: an embeddings batch holds at most {MAX_INPUTS}")
        if len({r.custom_id for r in requests}) != len(requests):
            raise ValueError("custom_id values must be unique: results are joined on them")
        per_request = self.spec.max_inputs_per_request or MAX_INPUTS
        for r in requests:
            if not r.custom_id or not 1 <= len(r.texts) <= per_request:
                raise ValueError(f"request {r.custom_id!r} has {len(r.texts)} inputs; "
                                 f"each needs a custom_id and 1 to {per_request} inputs")
            if not all(r.texts):
                raise PermanentError("empty_input", f"request {r.custom_id!r} holds an empty input; "
                                     "the embeddings API rejects empty strings")
        content = b"".join(json.dumps({
            "custom_id": r.custom_id, "method": "POST", "url": ENDPOINT,
            "body": {"model": self.model, "input": list(r.texts), "encoding_format": "base64",
                     **self._dimensions_param},
        }, ensure_ascii=False).encode() + b"\n" for r in requests)
        if len(content) > MAX_FILE_BYTES:
            raise ValueError(f"the batch file would be {len(content)} bytes: at most {MAX_FILE_BYTES}")
        return content

    def _outcome(self, line: Mapping[str, Any], n: int) -> LineResult | LineFailure | None:
        """A line's vectors or why there are none; ``None`` for a line that never ran.

        A request the provider refused has a non-200 ``response`` whose body holds the
        error; a failure outside HTTP (a timeout, the batch ending first) has ``error``."""
        error = line.get("error")
        response = line.get("response") if isinstance(line.get("response"), dict) else {}
        body = response.get("body")
        if isinstance(error, dict):
            code = str(error.get("code") or "batch_error")
            if code in NOT_RUN:
                return None
            return LineFailure(code, provider_text(error.get("message")))
        if response.get("status_code") != 200:
            status = response.get("status_code")
            if not isinstance(status, int):
                return LineFailure("invalid_response", "a line with neither a response nor an error")
            kind = classify(status, _error_body_of(body), {})
            return LineFailure(kind.code, kind.message, permanent=isinstance(kind, PermanentError))
        if not isinstance(body, dict):
            return LineFailure("invalid_response", "a 200 line without a JSON body")
        # The SDK's own response type, built without validation as the SDK builds the
        # synchronous answer: one validation for both paths.
        parsed = CreateEmbeddingResponse.model_construct(**body)
        usage = usage_tokens(parsed.usage)
        data = parsed.data if isinstance(parsed.data, list) else []
        try:
            vectors = validate_vectors(data, n, self.dimensions)
        except TransientError as exc:  # answered, so billed, but unusable
            return LineFailure(exc.code, exc.message, billed_units=usage)
        return LineResult(vectors, usage)


def _status_of(batch: object) -> BatchStatus:
    status = getattr(batch, "status", None)
    batch_id = getattr(batch, "id", None)
    if status not in STATES or not isinstance(batch_id, str):
        raise TransientError("invalid_response", f"OpenAI sent a batch without a known status: {provider_text(repr(status))[:40]}")
    counts = getattr(batch, "request_counts", None)
    errors = getattr(getattr(batch, "errors", None), "data", None) or []
    return BatchStatus(
        batch_id=batch_id, status=status,
        output_file_id=getattr(batch, "output_file_id", None), error_file_id=getattr(batch, "error_file_id", None),
        request_counts=RequestCounts(*(getattr(counts, k, 0) or 0 for k in ("total", "completed", "failed"))),
        errors=[_batch_error(e) for e in errors],
        created_at=getattr(batch, "created_at", 0) or 0, expires_at=getattr(batch, "expires_at", None))


def _batch_error(error: object) -> str:
    line = getattr(error, "line", None)
    where = f" (line {line})" if line is not None else ""
    return provider_text(f"{getattr(error, 'code', None) or 'error'}{where}: {getattr(error, 'message', None)}")


def _jsonl(content: bytes) -> Iterator[Mapping[str, Any]]:
    """The lines of an output or error file, read one at a time (files run to hundreds of MB)."""
    for raw in io.BytesIO(content):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            raise TransientError("invalid_response", "OpenAI sent a batch file that is not JSONL") from None
        if not isinstance(line, dict):
            raise TransientError("invalid_response", "OpenAI sent a batch file line that is not an object")
        yield line


def _error_body_of(body: object) -> Mapping[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}
