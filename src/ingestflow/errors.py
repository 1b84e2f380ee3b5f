"""Error classes that decide what happens to a job.

Every failure the pipeline sees is turned into one of three kinds, because the worker
must choose between exactly three reactions:

* ``PermanentError``: retrying cannot help (corrupt file, bad key, unknown model). The
  document fails with the code and a message a person understands.
* ``TransientError``: the same call may succeed later (timeouts, 429, 5xx, invalid
  responses). The job is retried with backoff, honouring ``retry_after``.
* ``DeferredError``: the call must not be made now (budget spent, breaker open). The
  job waits until ``retry_after`` without using up an attempt.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base class: a machine-readable ``code`` plus a human message. ``billed_units`` is
    what the provider reported charging for a call that still failed (an invalid response
    is billed), so the ledger records what was billed rather than the estimate.
    ``possibly_billed``: we stopped waiting after the request was sent, so the provider may
    have billed it without our knowing; the ledger keeps the estimate charged."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None,
                 billed_units: int | None = None, possibly_billed: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.billed_units = billed_units
        self.possibly_billed = possibly_billed

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class PermanentError(IngestError):
    """Fail the document; retrying will not help."""


class TransientError(IngestError):
    """Retry with backoff; ``retry_after`` (seconds) is a lower bound when known."""


class DeferredError(IngestError):
    """Do not call now; try again after ``retry_after`` seconds, attempt not counted."""
