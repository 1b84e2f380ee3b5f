"""Signed webhook callbacks (LlamaParse parse results).

The provider does not authenticate its callbacks in a way we can rely on, so ingestflow
derives a secret per parse job (a random key, stored with the job and carried in the
callback URL) from ``LLAMAPARSE_WEBHOOK_SECRET`` and hands it to the provider with the
callback URL. Every delivery must carry

    X-Ingestflow-Timestamp: <unix seconds>
    X-Ingestflow-Event-Id:  <unique id of this delivery's event>
    X-Ingestflow-Signature: v1=<hex HMAC-SHA256(job secret, f"{timestamp}.{event id}.{raw body}")>

and is accepted only if the signature matches (constant-time compare), the timestamp is
within the tolerance, and the event id was not seen before (replay protection, enforced
by the receiver's database). The event id is signed, so a captured delivery cannot be
replayed under a new one; the secret is per job, so a delivery for an earlier parse job
cannot be presented for a later one.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Ingestflow-Timestamp"
EVENT_ID_HEADER = "X-Ingestflow-Event-Id"
SIGNATURE_HEADER = "X-Ingestflow-Signature"
TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """The delivery is forged, stale or malformed; the message says which (for logs)."""


def job_secret(master_secret: str, job_key: str) -> str:
    """The per-job secret: derived, so nothing secret needs storing per job."""
    return hmac.new(master_secret.encode(), f"llamaparse-job:{job_key}".encode(),
                    hashlib.sha256).hexdigest()


class Signer:
    """HMAC over ``timestamp.event_id.body``, fed incrementally so that a large body
    need not be held in memory to be checked."""

    def __init__(self, secret: str, timestamp: int, event_id: str) -> None:
        self._mac = hmac.new(secret.encode(), f"{timestamp}.{event_id}.".encode(), hashlib.sha256)

    def update(self, chunk: bytes) -> None:
        self._mac.update(chunk)

    def signature(self) -> str:
        return "v1=" + self._mac.hexdigest()


def sign(secret: str, timestamp: int, event_id: str, body: bytes) -> str:
    signer = Signer(secret, timestamp, event_id)
    signer.update(body)
    return signer.signature()


def signed_headers(secret: str, body: bytes, event_id: str, now: float | None = None) -> dict[str, str]:
    """Headers a sender attaches to a delivery (used by the fake provider and tests)."""
    ts = int(now if now is not None else time.time())
    return {TIMESTAMP_HEADER: str(ts), EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: sign(secret, ts, event_id, body)}


def read_headers(headers: dict[str, str], now: float | None = None) -> tuple[int, str, str]:
    """(timestamp, event id, signature) of a delivery, checked before its body is read.
    Raises InvalidSignature."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(lower[TIMESTAMP_HEADER.lower()])
        event_id = lower[EVENT_ID_HEADER.lower()]
        signature = lower[SIGNATURE_HEADER.lower()]
    except (KeyError, ValueError):
        raise InvalidSignature("missing or malformed signature headers") from None
    if not event_id or len(event_id) > 200:
        raise InvalidSignature("bad event id")
    if abs((now if now is not None else time.time()) - timestamp) > TOLERANCE_SECONDS:
        raise InvalidSignature("timestamp outside tolerance")
    return timestamp, event_id, signature


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> str:
    """Check a delivery; return its event id. Raises InvalidSignature."""
    timestamp, event_id, signature = read_headers(headers, now)
    if not hmac.compare_digest(sign(secret, timestamp, event_id, body), signature):
        raise InvalidSignature("signature mismatch")
    return event_id
