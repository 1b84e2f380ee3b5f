"""OpenAI embeddings on the official SDK, one validated request per ``embed`` call.

The SDK's own retries are off (``max_retries=0``): the guard is the single retry layer,
so that every attempt passes the breaker, the rate limiter and the budget. This module
only packs requests to the API's limits, checks every response before anything can be
stored, and turns every failure into a classified error whose text never holds the key.

Vectors are requested as base64 and decoded here, not by the SDK: when the caller names
``encoding_format`` the SDK hands the base64 strings back untouched, and when it does not,
it decodes to Python float lists in the host's byte order. Decoding ``<f4`` straight into
numpy is exact (the wire format is little-endian float32) and skips a million-float list.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import numpy as np
import openai

from ingestflow.errors import DeferredError, IngestError, PermanentError, TransientError
from ingestflow.services.base import EmbeddingResult
from ingestflow.tokens import count_tokens

MODEL_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
SHORTENABLE = frozenset({"text-embedding-3-small", "text-embedding-3-large"})  # accept ``dimensions``
MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8191  # the API says 8192; one token of margin, as pgai does
MAX_REQUEST_TOKENS = int(300_000 * 0.95)  # safety margin on the per-request token cap
MAX_RETRY_AFTER = 120.0
QUOTA_RETRY_AFTER = 3600.0  # out of credit: someone has to pay, minutes will not help
CONNECT_TIMEOUT = 5.0
RATE_LIMIT_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-limit-tokens",
                      "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
                      "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
# Providers echo a masked key in 401 texts ("Incorrect API key provided: sk-abc***wxyz"):
# even that fragment stays out of our errors.
_KEY_LIKE = re.compile(r"\b(?:sk|llx)-[\w.*-]{4,}")


def redact_key(text: str, key: str) -> str:
    """``text`` without ``key`` or anything shaped like a provider key."""
    if key:
        text = text.replace(key, "***")
    return _KEY_LIKE.sub("***", text)


class OpenAIEmbedder:
    """``text-embedding-3-*`` / ``ada-002`` over ``POST /v1/embeddings``.

    ``http_client`` swaps the transport (the SDK takes ``httpx`` and ``httpx2`` clients);
    the embedder's ``timeout`` still applies to every request.
    """

    provider = "openai"

    def __init__(self, *, api_key: str, model: str = "text-embedding-3-small", dimensions: int | None = None,
                 base_url: str | None = None, timeout: float = 60.0,
                 http_client: httpx.AsyncClient | None = None) -> None:
        if model not in MODEL_DIMENSIONS:
            raise ValueError(f"unknown OpenAI embedding model {model!r}")
        if dimensions is not None and (model not in SHORTENABLE or not 1 <= dimensions <= MODEL_DIMENSIONS[model]):
            raise ValueError(f"{model} cannot return {dimensions} dimensions")
        self.model = model
        self.dimensions = dimensions or MODEL_DIMENSIONS[model]
        # Only v3 models take the parameter; sending the native size is harmless and
        # makes the space explicit.
        self._dimensions_param = {"dimensions": self.dimensions} if model in SHORTENABLE else {}
        self._key = api_key
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, http_client=http_client,
            timeout=openai.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)))

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIEmbedder(model={self.model!r}, dimensions={self.dimensions})"

    def batches(self, token_counts: Sequence[int]) -> list[range]:
        """Fewest consecutive requests within 2048 inputs and 95 % of the 300k token cap."""
        out: list[range] = []
        start, tokens = 0, 0
        for i, n in enumerate(token_counts):
            if n > MAX_INPUT_TOKENS:
                raise PermanentError("input_too_long", f"input {i} has {n} tokens; the limit is {MAX_INPUT_TOKENS}")
            if i > start and (i - start >= MAX_INPUTS or tokens + n > MAX_REQUEST_TOKENS):
                out.append(range(start, i))
                start, tokens = i, 0
            tokens += n
        if start < len(token_counts):
            out.append(range(start, len(token_counts)))
        return out

    async def embed(self, texts: Sequence[str]) -> EmbeddingResult:
        """One request; raises ``TransientError("invalid_response")`` rather than return a
        vector it could not verify."""
        if not texts:
            return EmbeddingResult(np.zeros((0, self.dimensions), np.float32), self.provider, self.model,
                                   self.dimensions, usage_tokens=0, requests=0)
        empty = [i for i, t in enumerate(texts) if not t]
        if empty:
            raise PermanentError("empty_input", f"input {empty[0]} is empty; the embeddings API rejects empty strings")
        try:
            raw = await self._client.embeddings.with_raw_response.create(
                model=self.model, input=list(texts), encoding_format="base64", **self._dimensions_param)
            response = raw.parse()
        except openai.APIStatusError as exc:
            raise self._classify_status(exc) from None
        except openai.APITimeoutError:
            raise TransientError("timeout", "OpenAI did not answer in time") from None
        except openai.APIConnectionError as exc:
            raise TransientError("connection_error", f"OpenAI connection failed: {self._describe(exc)}") from None
        except (openai.APIResponseValidationError, ValueError, TypeError) as exc:  # unreadable body
            raise TransientError("invalid_response", f"OpenAI sent an unreadable body: {type(exc).__name__}") from None
        vectors = self._validate(response.data or [], len(texts))
        usage = _usage_tokens(response.usage)
        if usage is None:  # the same tokenizer counts exactly what the provider bills
            usage = sum(count_tokens(t) for t in texts)
        headers = {k: raw.headers[k] for k in RATE_LIMIT_HEADERS if k in raw.headers}
        return EmbeddingResult(vectors, self.provider, self.model, self.dimensions,
                               usage_tokens=usage, requests=1, extra=headers)

    async def health(self) -> tuple[bool, str]:
        """Free: retrieves the model's metadata (``GET /models/{id}``); never raises."""
        try:
            await self._client.models.retrieve(self.model, timeout=10)
        except openai.APIStatusError as exc:
            return False, str(self._classify_status(exc))
        except Exception as exc:  # noqa: BLE001 - any failure means "unhealthy"
            return False, self._describe(exc)
        return True, f"{self.model} reachable"

    def _validate(self, data: Sequence[object], n: int) -> np.ndarray:
        """One finite, non-zero vector of the expected size per input, placed by ``index``."""
        indices = [getattr(item, "index", None) for item in data]
        if len(data) != n or set(indices) != set(range(n)):
            raise TransientError("invalid_response", f"expected {n} embeddings indexed 0..{n - 1}, got {len(data)}")
        out = np.empty((n, self.dimensions), dtype=np.float32)
        for index, item in zip(indices, data):
            try:
                vec = _decode(getattr(item, "embedding", None))
            except (ValueError, TypeError):
                raise TransientError("invalid_response", f"embedding {index} is not base64 float32") from None
            if vec.shape != (self.dimensions,):
                raise TransientError("invalid_response",
                                     f"expected {self.dimensions} dimensions, got shape {vec.shape}")
            out[index] = vec
        if not np.all(np.isfinite(out)):
            raise TransientError("invalid_response", "the response holds NaN or infinite values")
        if np.any(np.linalg.norm(out, axis=1) == 0):
            raise TransientError("invalid_response", "the response holds a zero vector")
        return out

    def _classify_status(self, exc: openai.APIStatusError) -> IngestError:
        """PROVIDERS.md's rules: quota is deferred; 408/409/429/5xx are transient unless
        ``x-should-retry`` says otherwise; the rest is permanent."""
        status = exc.status_code
        error = _error_body(exc)
        message = self._scrub(str(error.get("message") or exc.message))[:500]
        text = f"OpenAI {status}: {message}"
        if status == 429 and "insufficient_quota" in (error.get("code"), error.get("type")):
            return DeferredError("provider_quota", f"OpenAI account is out of credit: {message}",
                                 retry_after=QUOTA_RETRY_AFTER)
        should_retry = exc.response.headers.get("x-should-retry")
        retryable = status in (408, 409, 429) or status >= 500
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        if retryable:
            code = {408: "timeout", 409: "conflict", 429: "rate_limited"}.get(status)
            return TransientError(code or ("server_error" if status >= 500 else "retry_requested"), text,
                                  retry_after=retry_after_seconds(exc.response.headers))
        if status in (401, 403):
            return PermanentError("auth_failed", f"OpenAI rejected the API key: {text}")
        if status == 404:
            return PermanentError("model_not_found", text)
        # What is left: other 4xx, or a 429/5xx the provider marked ``x-should-retry: false``.
        return PermanentError("provider_refused" if status == 429 or status >= 500 else "bad_request", text)

    def _scrub(self, text: str) -> str:
        return redact_key(text, self._key)

    def _describe(self, exc: BaseException) -> str:
        return self._scrub(f"{type(exc).__name__}: {exc}")[:500]


def _decode(embedding: object) -> np.ndarray:
    """Base64 little-endian float32, or a float list from a server that ignored the format."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def _error_body(exc: openai.APIStatusError) -> Mapping[str, object]:
    """The ``error`` object of an OpenAI error body (the SDK passes ``body["error"]`` or
    the whole body, depending on its shape)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    return error if isinstance(error, dict) else {}


def _usage_tokens(usage: object) -> int | None:
    for name in ("prompt_tokens", "total_tokens"):
        value = getattr(usage, name, None)
        if isinstance(value, int) and value >= 0:
            return value
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms``, or ``retry-after`` in seconds or as an HTTP date; capped at 120 s."""
    if (ms := _number(headers.get("retry-after-ms"))) is not None:
        return min(max(ms / 1000, 0.0), MAX_RETRY_AFTER)
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := _number(value)) is not None:
        return min(max(seconds, 0.0), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - datetime.now(UTC)).total_seconds()), MAX_RETRY_AFTER)


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None
