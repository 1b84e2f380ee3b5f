"""Keep API keys out of access logs.

The dashboard accepts its key as ``/?key=...`` (the page moves it to session storage at
once), so the server's access log would otherwise record the key in the request line.
"""

from __future__ import annotations

import logging
import re

_KEY_PARAM = re.compile(r"(?i)([?&](?:key|api_key)=)[^&\s]*")
ACCESS_LOGGER = "uvicorn.access"


class RedactKeyParams(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_KEY_PARAM.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = _KEY_PARAM.sub(r"\1***", record.msg)
        return True


def install_access_log_filter() -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactKeyParams) for f in logger.filters):
        logger.addFilter(RedactKeyParams())
