"""Why an operation was not carried out, in words both faces can use: the API turns the
kind into an HTTP status, the CLI into an exit code; the code and message are the same."""

from __future__ import annotations

from typing import Literal

Kind = Literal["invalid", "unsupported", "not_found", "conflict", "limit", "unavailable"]


class Refused(Exception):
    """The request cannot be done as asked; nothing was changed."""

    def __init__(self, kind: Kind, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def not_found(what: str = "document") -> Refused:
    return Refused("not_found", "not_found", f"No such {what}.")
