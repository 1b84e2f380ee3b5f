"""Signed webhook callbacks (LlamaParse parse results).

The provider does not authenticate its callbacks in a way we can rely on, so ingestflow
derives a secret per parse job from ``LLAMAPARSE_WEBHOOK_SECRET`` and hands it to the
provider with the callback URL. Every delivery must carry

    X-Ingestflow-Timestamp: <unix seconds>
    X-Ingestflow-Event-Id:  <unique id of this delivery's event>
    X-Ingestflow-Signature: v1=<hex HMAC-SHA256(job secret, f"{timestamp}.{raw body}")>

and is accepted only if the signature matches (constant-time compare), the timestamp is
within the tolerance, and the event id was not seen before (replay protection, enforced
by the receiver's database).
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


def job_secret(master_secret: str, document_id: str) -> str:
    """The per-job secret: derived, so nothing secret needs storing per job."""
    return hmac.new(master_secret.encode(), f"llamaparse-job:{document_id}".encode(),
                    hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, event_id: str, now: float | None = None) -> dict[str, str]:
    """Headers a sender attaches to a delivery (used by the fake provider and tests)."""
    ts = int(now if now is not None else time.time())
    return {TIMESTAMP_HEADER: str(ts), EVENT_ID_HEADER: event_id, SIGNATURE_HEADER: sign(secret, ts, body)}


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> str:
    """Check a delivery; return its event id. Raises InvalidSignature."""
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
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise InvalidSignature("signature mismatch")
    return event_id
