"""Opaque keyset cursors: clients (of the API, or of the CLI's listings) pass back what
they were given, never an offset, so pages stay stable while documents are added."""

from __future__ import annotations

import base64
import json
from typing import Any

from ingestflow.operations.errors import Refused

MAX_PAGE = 500  # rows in one page of a listing, on every face (API, CLI, Python client, MCP)


def check_limit(limit: int) -> int:
    """A page's size: 1 to MAX_PAGE (Refused ``invalid_limit`` otherwise)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise Refused("invalid", "invalid_limit", f"limit must be a whole number from 1 to {MAX_PAGE}.")
    return limit


def encode(*values: Any) -> str:
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, count: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if isinstance(values, list) and len(values) == count and all(isinstance(v, str) for v in values):
            return values
    except ValueError:
        pass
    raise invalid_cursor()


def invalid_cursor() -> Refused:
    return Refused("invalid", "invalid_cursor", "The cursor is not one a listing returned.")
