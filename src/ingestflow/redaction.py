"""The one scrubber: every secret this process knows, and anything shaped like a provider
key, is masked before text leaves it (logs, error messages, events, API responses).

Settings register their secrets at start-up and provider clients register their keys
when built, so no code path (an exception text, a repr, an event field) can leak a key
by forgetting to mask it. Providers echo a masked key in 401 texts ("sk-abc***wxyz"):
even that fragment stays out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
_KEY_LIKE = re.compile(r"\b(?:sk|llx|ifk)[-_][\w.*-]{4,}")
_secrets: list[str] = []


def register(secrets: Iterable[str]) -> None:
    """Add values to scrub from now on (short ones would mask ordinary words)."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret not in _secrets:
            _secrets.append(secret)
    _secrets.sort(key=len, reverse=True)  # longest first: no partial leftovers


def scrub(value: Any) -> Any:
    """``value`` with secrets masked, through strings, dicts, lists, tuples and exceptions."""
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return _KEY_LIKE.sub(MASK, value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub(v) for v in value)
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return value
