"""Structured logs through structlog, with every configured secret scrubbed.

Redaction (ingestflow.redaction) happens in a processor, at the last moment before output,
so no code path (an exception text, a repr, an event field) can leak a key by forgetting
to mask it.

structlog is imported, and configured, when the first line is logged: a CLI command that
logs nothing (a quiet no-op re-ingest, ``status``) does not pay for it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

from ingestflow.redaction import register, scrub

_config: dict[str, Any] = {"level": "INFO", "json": False}
_configured = False


def redact(text: str) -> str:
    """``text`` with every known secret masked (see ingestflow.redaction)."""
    return scrub(text)


def configure(level: str = "INFO", *, json: bool = False, secrets: Iterable[str] = ()) -> None:
    """Register the secrets now; apply the format and level before the next line is logged."""
    global _configured
    register(secrets)
    _config.update(level=level, json=json)
    _configured = False


def _trace_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """The current trace's ids (ingestflow.tracing), so a log line finds its trace."""
    from ingestflow.tracing import log_ids

    return {**event, **log_ids()}


def _redact_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return {k: scrub(v) for k, v in event.items()}


def _structlog() -> Any:
    global _configured
    import structlog

    if not _configured:
        renderer: Any = (structlog.processors.JSONRenderer() if _config["json"]
                         else structlog.dev.ConsoleRenderer(colors=False))
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.format_exc_info,
                _trace_processor,
                _redact_processor,
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(
                logging.getLevelNamesMapping().get(_config["level"].upper(), logging.INFO)
            ),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            cache_logger_on_first_use=False,
        )
        _configured = True
    return structlog


class _Logger:
    """A named logger whose methods (info, warning, exception, ...) reach structlog."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        return getattr(_structlog().get_logger(self._name), method)


def get_logger(name: str) -> Any:
    return _Logger(name)
