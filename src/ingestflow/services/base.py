"""The one protocol per service, and the typed results they return.

Every implementation (mock, local, OpenAI, LlamaParse) returns the same result types, so
the pipeline never needs to know which one it talks to: the result itself says which
provider and model produced it, and how much usage it cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


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
    """Turns texts into vectors of one model; ``model`` + ``dimensions`` name the space."""

    provider: str
    model: str
    dimensions: int

    def batches(self, token_counts: Sequence[int]) -> list[range]:
        """Split inputs (in order) into calls that each fit one provider request."""
        ...

    async def embed(self, texts: Sequence[str]) -> EmbeddingResult:
        """One request: vectors in input order, validated. Raise classified errors; no retries
        here, because the pipeline owns the single retry layer and stores each batch."""
        ...

    async def health(self) -> tuple[bool, str]:
        """A cheap check that costs nothing (no paid call); never raises."""
        ...
