"""OpenAI embeddings on the official SDK, one validated request per ``embed`` call.

The SDK's own retries are off (``max_retries=0``): the guard is the single retry layer,
so that every attempt passes the breaker, the rate limiter and the budget. This module
only packs requests to the API's limits, checks every response before anything can be
stored, and turns every failure into a classified error whose text never holds the key.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import numpy as np
import openai

from ingestflow.errors import DeferredError, IngestError, PermanentError, TransientError
from ingestflow.services.base import EmbeddingResult

MODEL_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8191  # the API says 8192; one token of margin, as pgai does
MAX_REQUEST_TOKENS = int(300_000 * 0.95)  # safety margin on the per-request token cap
MAX_RETRY_AFTER = 120.0
RATE_LIMIT_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-limit-tokens",
                      "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
                      "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")


class OpenAIEmbedder:
    provider = "openai"

    def __init__(self, *, api_key: str, model: str = "text-embedding-3-small", dimensions: int | None = None,
                 base_url: str | None = None, timeout: float = 60.0) -> None:
        if model not in MODEL_DIMENSIONS:
            raise ValueError(f"unknown OpenAI embedding model {model!r}")
        if dimensions is not None and (model == "text-embedding-ada-002" or not 1 <= dimensions <= MODEL_DIMENSIONS[model]):
            raise ValueError(f"{model} cannot return {dimensions} dimensions")
        self.model = model
        self.dimensions = dimensions or MODEL_DIMENSIONS[model]
        self._send_dimensions = dimensions is not None
        self._key = api_key
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIEmbedder(model={self.model!r}, dimensions={self.dimensions})"

    def batches(self, token_counts: Sequence[int]) -> list[range]:
        """Fewest consecutive requests within 2048 inputs and the token cap."""
        out, start, tokens = [], 0, 0
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
        if not texts:
            return EmbeddingResult(np.zeros((0, self.dimensions), np.float32), self.provider, self.model,
                                   self.dimensions, usage_tokens=0, requests=0)
        if any(not t for t in texts):
            raise PermanentError("empty_input", "the embeddings API rejects empty strings")
        try:
            raw = await self._client.embeddings.with_raw_response.create(
                model=self.model, input=list(texts), encoding_format="base64",
                **({"dimensions": self.dimensions} if self._send_dimensions else {}),
            )
            response = raw.parse()
        except openai.APIStatusError as exc:
            raise self._classify_status(exc) from None
        except openai.APIConnectionError as exc:  # includes timeouts
            kind = "timeout" if isinstance(exc, openai.APITimeoutError) else "connection_error"
            raise TransientError(kind, f"OpenAI {kind.replace('_', ' ')}: {self._scrub(str(exc))}") from None
        except (ValueError, TypeError) as exc:  # a body that is not the JSON it should be
            raise TransientError("invalid_response", f"OpenAI sent an unreadable body: {type(exc).__name__}") from None
        vectors = self._validate(response, len(texts))
        headers = {k: raw.headers[k] for k in RATE_LIMIT_HEADERS if k in raw.headers}
        usage = response.usage.prompt_tokens if response.usage else 0
        return EmbeddingResult(vectors, self.provider, self.model, self.dimensions,
                               usage_tokens=usage, requests=1, extra=headers)

    def _validate(self, response: object, n: int) -> np.ndarray:
        """One finite, non-zero vector of the expected size per input, in index order."""
        data = getattr(response, "data", None) or []
        indices = sorted(getattr(d, "index", -1) for d in data)
        if indices != list(range(n)):
            raise TransientError("invalid_response", f"expected {n} embeddings indexed 0..{n - 1}, got {len(data)}")
        out = np.empty((n, self.dimensions), dtype=np.float32)
        for item in data:
            vec = _decode(item.embedding)
            if vec.shape != (self.dimensions,):
                raise TransientError("invalid_response", f"expected {self.dimensions} dimensions, got {vec.shape[0]}")
            out[item.index] = vec
        if not np.all(np.isfinite(out)):
            raise TransientError("invalid_response", "the response holds NaN or infinite values")
        if np.any(np.linalg.norm(out, axis=1) == 0):
            raise TransientError("invalid_response", "the response holds a zero vector")
        return out

    def _classify_status(self, exc: openai.APIStatusError) -> IngestError:
        status = exc.status_code
        code = _error_code(exc)
        message = self._scrub(_error_message(exc))
        retry_after = retry_after_seconds(exc.response.headers)
        should_retry = exc.response.headers.get("x-should-retry")
        if status == 429 and code == "insufficient_quota":
            return DeferredError("provider_quota", f"OpenAI account is out of credit: {message}", retry_after=3600)
        if should_retry == "false" and status >= 400:
            return PermanentError("provider_refused", f"OpenAI {status}: {message}")
        if status == 429:
            return TransientError("rate_limited", f"OpenAI rate limit: {message}", retry_after=retry_after)
        if status in (408, 409) or status >= 500 or should_retry == "true":
            return TransientError("server_error", f"OpenAI {status}: {message}", retry_after=retry_after)
        if status in (401, 403):
            return PermanentError("auth_failed", f"OpenAI rejected the API key ({status}): {message}")
        if status == 404:
            return PermanentError("model_not_found", f"OpenAI: {message}")
        return PermanentError("bad_request", f"OpenAI {status}: {message}")

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    async def health(self) -> tuple[bool, str]:
        """Free: retrieves the model's metadata; never raises."""
        try:
            await self._client.with_options(timeout=10).models.retrieve(self.model)
        except openai.APIStatusError as exc:
            return False, f"{exc.status_code}: {self._scrub(_error_message(exc))}"
        except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"
            return False, self._scrub(f"{type(exc).__name__}: {exc}")
        return True, f"{self.model} reachable"


def _decode(embedding: object) -> np.ndarray:
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)


def _error_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    return error.get("code") if isinstance(error, dict) else None


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or exc.message)[:500]


def retry_after_seconds(headers: object) -> float | None:
    """``retry-after-ms``, or ``retry-after`` in seconds or as an HTTP date; capped at 120 s."""
    get = getattr(headers, "get", lambda _k: None)
    if (ms := get("retry-after-ms")) is not None:
        try:
            return min(float(ms) / 1000, MAX_RETRY_AFTER)
        except ValueError:
            pass
    value = get("retry-after")
    if value is None:
        return None
    try:
        return min(float(value), MAX_RETRY_AFTER)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return min(max(0.0, (when - datetime.now(timezone.utc)).total_seconds()), MAX_RETRY_AFTER)
