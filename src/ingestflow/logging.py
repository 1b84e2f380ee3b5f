"""Structured logs through structlog, with every configured secret scrubbed.

Redaction happens in a processor, at the last moment before output, so no code path
(an exception text, a repr, an event field) can leak a key by forgetting to mask it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog

MASK = "***"
_secrets: list[str] = []


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    for secret in secrets if secrets is not None else _secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value


def _redact_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return {k: _redact_value(v) for k, v in event.items()}


def register_secrets(secrets: Iterable[str]) -> None:
    """Add values to scrub from every log line from now on."""
    for secret in secrets:
        if secret and secret not in _secrets:
            _secrets.append(secret)
    _secrets.sort(key=len, reverse=True)  # longest first: no partial leftovers


def configure(level: str = "INFO", *, json: bool = False, secrets: Iterable[str] = ()) -> None:
    register_secrets(secrets)
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
