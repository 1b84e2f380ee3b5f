"""OpenAI embeddings on the official SDK, one validated request per ``embed`` call.

The SDK's own retries are off (``max_retries=0``): the guard is the single retry layer,
so that every attempt passes the breaker, the rate limiter and the budget. This module
only checks every response before anything can be stored, and turns every failure into a
classified error whose text never holds the key; the model's limits are the catalogue's.

Vectors are requested as base64 and decoded here, not by the SDK: when the caller names
``encoding_format`` the SDK hands the base64 strings back untouched, and when it does not,
it decodes to Python float lists in the host's byte order. Decoding ``<f4`` straight into
numpy is exact (the wire format is little-endian float32) and skips a million-float list.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import numpy as np
import openai

from ingestflow.catalogue import openai_model
from ingestflow.errors import IngestError, PermanentError, TransientError
from ingestflow.redaction import register as register_secrets
from ingestflow.redaction import scrub
from ingestflow.services import failures
from ingestflow.services.base import EmbeddingResult
from ingestflow.tokens import count_tokens

RATE_LIMIT_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-limit-tokens",
                      "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
                      "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
CONNECT_TIMEOUT = 5.0
PROVIDER = "OpenAI"

T = TypeVar("T")


class OpenAIModelClient:
    """The SDK client for one OpenAI embedding model and size: what the synchronous
    embedder and the Batch API client (``openai_batch``) share.

    ``http_client`` swaps the transport (the SDK takes ``httpx`` and ``httpx2`` clients);
    ``timeout`` still applies to every request.
    """

    provider = "openai"

    def __init__(self, *, api_key: str, model: str = "text-embedding-3-small", dimensions: int | None = None,
                 base_url: str | None = None, timeout: float = 60.0,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self.spec = openai_model(model, dimensions)  # ValueError for an unknown model or size
        self.model = model
        self.dimensions = self.spec.dimensions
        # Only v3 models take the parameter; sending the native size is harmless and
        # makes the space explicit.
        self._dimensions_param = {"dimensions": self.dimensions} if self.spec.shortenable else {}
        self._client = sdk_client(api_key, base_url, timeout, http_client)

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(model={self.model!r}, dimensions={self.dimensions})"

    async def aclose(self) -> None:
        await self._client.close()


class OpenAIEmbedder(OpenAIModelClient):
    """``text-embedding-3-*`` / ``ada-002`` over ``POST /v1/embeddings``."""

    async def embed(self, texts: Sequence[str]) -> EmbeddingResult:
        """One request; raises ``TransientError("invalid_response")`` rather than return a
        vector it could not verify."""
        if not texts:
            return EmbeddingResult(np.zeros((0, self.dimensions), np.float32), self.provider, self.model,
                                   self.dimensions, usage_tokens=0, requests=0)
        empty = [i for i, t in enumerate(texts) if not t]
        if empty:
            raise PermanentError("empty_input", f"input {empty[0]} is empty; the embeddings API rejects empty strings")

        async def create() -> tuple[Any, Any]:
            raw = await self._client.embeddings.with_raw_response.create(
                model=self.model, input=list(texts), encoding_format="base64", **self._dimensions_param)
            return raw, raw.parse()  # an unreadable body is classified like a failed call

        raw, response = await sdk_call(create(), not_found="model_not_found")
        usage = usage_tokens(response.usage)
        if usage is None:  # the same tokenizer counts exactly what the provider bills
            usage = sum(count_tokens(t) for t in texts)
        try:
            vectors = validate_vectors(response.data or [], len(texts), self.dimensions)
        except TransientError as exc:
            exc.billed_units = usage  # unusable, but answered: the provider billed it
            raise
        headers = {k: raw.headers[k] for k in RATE_LIMIT_HEADERS if k in raw.headers}
        return EmbeddingResult(vectors, self.provider, self.model, self.dimensions,
                               usage_tokens=usage, requests=1, extra=headers)

    async def health(self) -> tuple[bool, str]:
        """Free: retrieves the model's metadata (``GET /models/{id}``); never raises."""
        try:
            await self._client.models.retrieve(self.model, timeout=10)
        except openai.APIStatusError as exc:
            return False, str(classify_status(exc, not_found="model_not_found"))
        except Exception as exc:  # noqa: BLE001 - any failure means "unhealthy"
            return False, describe(exc)
        return True, f"{self.model} reachable"

async def sdk_call(request: Awaitable[T], *, not_found: str = "not_found") -> T:
    """One SDK call, its failures classified: never a raw SDK exception, never the key.
    ``not_found``: what a 404 means for this call (the model, or a batch or file)."""
    try:
        return await request
    except openai.APIStatusError as exc:
        raise classify_status(exc, not_found=not_found) from None
    except openai.APITimeoutError as exc:  # the SDK raises it from httpx's own timeout
        raise failures.timed_out(PROVIDER, exc.__cause__) from None
    except openai.APIConnectionError as exc:
        raise failures.unreachable(PROVIDER, describe(exc)) from None
    except (openai.APIResponseValidationError, ValueError, TypeError) as exc:  # unreadable body
        raise TransientError("invalid_response", f"OpenAI sent an unreadable body: {type(exc).__name__}") from None


def classify_status(exc: openai.APIStatusError, *, not_found: str = "not_found") -> IngestError:
    return classify(exc.status_code, error_body(exc), exc.response.headers, exc.message, not_found=not_found)


def classify(status: int, error: Mapping[str, Any], headers: Mapping[str, str], fallback: str | None = None,
             *, not_found: str = "not_found") -> IngestError:
    """An HTTP error answer, of a call or of one batch line, through the one failures table."""
    message = provider_text(error.get("message") or fallback)
    quota = status == 429 and "insufficient_quota" in (error.get("code"), error.get("type"))
    return failures.from_status(PROVIDER, status, message, headers, quota_exhausted=quota, not_found=not_found)


def provider_text(value: object) -> str:
    """A provider's message as it may be shown: scrubbed of secrets, at most 500 characters."""
    return scrub(str(value or "no message"))[:500]


def sdk_client(api_key: str, base_url: str | None, timeout: float,
               http_client: httpx.AsyncClient | None) -> openai.AsyncOpenAI:
    """The SDK's client as every OpenAI caller here uses it: its retries off (the guard
    retries), short connects, and the key registered with the scrubber."""
    register_secrets([api_key])
    return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, http_client=http_client,
                              timeout=openai.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)))


def validate_vectors(data: Sequence[object], n: int, dimensions: int) -> np.ndarray:
    """One finite, non-zero vector of ``dimensions`` per input, placed by ``index``: the
    check every embeddings response passes, synchronous or a batch line, before storage."""
    indices = [getattr(item, "index", None) for item in data]
    if len(data) != n or set(indices) != set(range(n)):
        raise TransientError("invalid_response", f"expected {n} embeddings indexed 0..{n - 1}, got {len(data)}")
    out = np.empty((n, dimensions), dtype=np.float32)
    for index, item in zip(indices, data):
        try:
            vec = _decode(getattr(item, "embedding", None))
        except (ValueError, TypeError):
            raise TransientError("invalid_response", f"embedding {index} is not base64 float32") from None
        if vec.shape != (dimensions,):
            raise TransientError("invalid_response", f"expected {dimensions} dimensions, got shape {vec.shape}")
        out[index] = vec
    if not np.all(np.isfinite(out)):
        raise TransientError("invalid_response", "the response holds NaN or infinite values")
    if np.any(np.linalg.norm(out, axis=1) == 0):
        raise TransientError("invalid_response", "the response holds a zero vector")
    return out


def describe(exc: BaseException) -> str:
    return scrub(f"{type(exc).__name__}: {exc}")[:500]


def _decode(embedding: object) -> np.ndarray:
    """Base64 little-endian float32, or a float list from a server that ignored the format."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def error_body(exc: openai.APIStatusError) -> Mapping[str, object]:
    """The ``error`` object of an OpenAI error body (the SDK passes ``body["error"]`` or
    the whole body, depending on its shape)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    return error if isinstance(error, dict) else {}


def usage_tokens(usage: object) -> int | None:
    for name in ("prompt_tokens", "total_tokens"):
        value = getattr(usage, name, None)
        if isinstance(value, int) and value >= 0:
            return value
    return None
