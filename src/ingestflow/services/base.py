"""The one protocol per service, and the typed results they return.

Every implementation (mock, local, OpenAI, LlamaParse) returns the same result types, so
the pipeline never needs to know which one it talks to: the result itself says which
provider and model produced it, and how much usage it cost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ingestflow.catalogue import EmbeddingModel

if TYPE_CHECKING:
    import numpy as np

# C0 and C1 controls (but tab and newline), lone surrogates and non-characters: PDFium
# emits some (e.g. \x02 for a hyphen it inserted), a provider may send anything,
# PostgreSQL text refuses NUL and UTF-8 has no surrogates.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean_text(text: str) -> str:
    """Unix newlines, no control characters: safe to chunk and to store. Every parser's
    Markdown passes through this, local or remote."""
    return _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


@dataclass(frozen=True)
class PageSpan:
    """Page ``page`` (1-based) covers ``markdown[start:end]``."""

    page: int
    start: int
    end: int


@dataclass(frozen=True)
class ParsedDocument:
    markdown: str
    parser: str  # provider that produced the text: "local", "llamaparse"
    pages: tuple[PageSpan, ...] = ()  # empty when the format has no pages
    usage_pages: int = 0  # billable pages (0 for free parsers)
    title: str = ""  # the title the file declares in its metadata (PDF, DOCX, HTML), if any


@runtime_checkable
class Parser(Protocol):
    """Turns the bytes of one document into Markdown."""

    name: str

    async def parse(self, data: bytes, mime: str, filename: str) -> ParsedDocument:
        """Raise ``PermanentError`` for bad input, ``TransientError`` for provider trouble."""
        ...

    async def health(self) -> tuple[bool, str]:
        """A cheap check that costs nothing (no paid call); never raises."""
        ...

    async def aclose(self) -> None:
        """Release connections, while the event loop that opened them still runs."""
        ...


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: np.ndarray  # shape (len(texts), dimensions), float32, row i is texts[i]
    provider: str
    model: str
    dimensions: int
    usage_tokens: int
    requests: int = 1  # HTTP requests it took (0 for local embedders)
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of one model; ``provider``, ``model`` and ``dimensions`` name
    the space, ``spec`` (the catalogue entry) gives its limits and prices."""

    provider: str
    model: str
    dimensions: int
    spec: EmbeddingModel

    async def embed(self, texts: Sequence[str]) -> EmbeddingResult:
        """One request: vectors in input order, validated. Raise classified errors; no retries
        here, because the pipeline owns the single retry layer and stores each batch."""
        ...

    async def health(self) -> tuple[bool, str]:
        """A cheap check that costs nothing (no paid call); never raises."""
        ...

    async def aclose(self) -> None:
        """Release connections, while the event loop that opened them still runs."""
        ...


class CallbackParser(Protocol):
    """A paid parser whose jobs can post their result to a callback URL, so that no worker
    waits on them: submit, then a poll or the callback brings the result."""

    name: str

    async def submit(self, data: bytes, filename: str, *, webhook_url: str, webhook_secret: str,
                     mime: str) -> str:
        """Start a job; returns the provider's job id."""
        ...

    async def status(self, job_id: str) -> str:
        """PENDING, SUCCESS or PARTIAL_SUCCESS; PermanentError when the provider gave up."""
        ...

    async def fetch_markdown(self, job_id: str) -> ParsedDocument: ...
