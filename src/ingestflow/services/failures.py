"""One vocabulary for provider failures, shared by every provider client and the guard.

A provider answers an HTTP status (or no answer at all); this table decides what that
means for the job, following the providers' own retry rules (../shared/PROVIDERS.md):

| answer                                  | kind      | code             |
|-----------------------------------------|-----------|------------------|
| timeout, connection lost                | transient | timeout, connection_error |
| 408, 409, 429, 5xx                      | transient | timeout, conflict, rate_limited, server_error |
| 402, 429 ``insufficient_quota``         | deferred  | provider_quota (someone has to pay; an hour) |
| 401, 403                                | permanent | auth_failed      |
| 404                                     | permanent | not_found (OpenAI: model_not_found) |
| other 4xx                               | permanent | bad_request      |
| unusable 2xx body (count, NaN, dims)    | transient | invalid_response (billed) |

``x-should-retry: true|false`` overrides the status, as the official SDKs let it.
Our own timeout once the request was sent may still be billed (``possibly_billed``): the
guard keeps its estimate charged, so timeouts can never take spend past a limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from ingestflow.errors import DeferredError, IngestError, PermanentError, TransientError

MAX_RETRY_AFTER = 120.0  # the SDKs' ceiling on a server-requested wait
QUOTA_RETRY_AFTER = 3600.0  # out of credit: minutes will not help
# Billed although the response was unusable: the provider counted the tokens.
BILLED_FAILURES = frozenset({"invalid_response"})
# Throttling is not an outage: it informs the rate limiter, not the circuit breaker.
THROTTLED = frozenset({"rate_limited"})
_TRANSIENT_CODES = {408: "timeout", 409: "conflict", 429: "rate_limited"}


def from_status(provider: str, status: int, message: str, headers: Mapping[str, str], *,
                quota_exhausted: bool = False, not_found: str = "not_found") -> IngestError:
    """The error an HTTP error status means. ``message`` is the provider's, already scrubbed."""
    text = f"{provider} {status}: {message}"
    if status == 402 or quota_exhausted:
        return DeferredError("provider_quota", f"{provider} account is out of credit: {message}",
                             retry_after=QUOTA_RETRY_AFTER)
    retryable = status in _TRANSIENT_CODES or status >= 500
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    if retryable:
        code = _TRANSIENT_CODES.get(status, "server_error" if status >= 500 else "retry_requested")
        return TransientError(code, text, retry_after=retry_after_seconds(headers))
    if status in (401, 403):
        return PermanentError("auth_failed", f"{provider} rejected the API key: {text}")
    if status == 404:
        return PermanentError(not_found, text)
    # What is left: other 4xx, or a 429/5xx the provider marked ``x-should-retry: false``.
    return PermanentError("provider_refused" if status == 429 or status >= 500 else "bad_request", text)


def timed_out(provider: str, cause: BaseException | None) -> TransientError:
    """Our client stopped waiting (``cause``: httpx's timeout). Once the request was on its
    way (a read or write timeout) the provider may bill it: the guard keeps it charged. A
    connect or pool timeout sent nothing."""
    import httpx  # here: a search imports this module, and `import ingestflow` stays light

    sent = not isinstance(cause, httpx.ConnectTimeout | httpx.PoolTimeout)
    return TransientError("timeout", f"{provider} did not answer in time", possibly_billed=sent)


def unreachable(provider: str, detail: str) -> TransientError:
    return TransientError("connection_error", f"{provider} connection failed: {detail}")


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
