"""Structured logs through structlog, with every configured secret scrubbed.

Redaction (ingestflow.redaction) happens in a processor, at the last moment before output,
so no code path (an exception text, a repr, an event field) can leak a key by forgetting
to mask it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog

from ingestflow.redaction import register, scrub

def redact(text: str) -> str:
    """``text`` with every known secret masked (see ingestflow.redaction)."""
    return scrub(text)


def _redact_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return {k: scrub(v) for k, v in event.items()}


def configure(level: str = "INFO", *, json: bool = False, secrets: Iterable[str] = ()) -> None:
    register(secrets)
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
