"""Defence in depth for texts that reach clients: error messages and event details come
from providers and pipeline code, so every configured secret is masked once more before
a response leaves (the same list the log redaction uses)."""

from __future__ import annotations

from typing import Any

from ingestflow.logging import redact


def scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value
