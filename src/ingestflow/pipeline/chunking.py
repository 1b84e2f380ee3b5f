"""Token-aware, Markdown-aware chunking with exact cl100k_base counts.

Splits at headings first (a chunk never spans two sections, and carries its heading
path), then packs paragraphs; a paragraph too big for a chunk is split at sentences, and
a sentence too big at token boundaries. Chunks are exact substrings of the Markdown (their
char offsets are kept), every non-blank character lands in some chunk, and no chunk has
more than ``max_tokens`` tokens, counted on the final text (the count of a concatenation
is not the sum of the counts, so each chunk is verified and shrunk if needed).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ingestflow.services.base import PageSpan
from ingestflow.tokens import count_tokens, encoding

HARD_LIMIT = 8191  # OpenAI's per-input token limit: no chunk may ever exceed it

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"')\]]*\s+")


@dataclass(frozen=True)
class ChunkingConfig:
    max_tokens: int = 512
    overlap_tokens: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.max_tokens <= HARD_LIMIT:
            raise ValueError(f"max_tokens must be between 1 and {HARD_LIMIT}")
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ValueError("overlap_tokens must be >= 0 and smaller than max_tokens")


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    token_count: int
    heading_path: tuple[str, ...]
    pages: tuple[int, ...]
    char_start: int
    char_end: int


@dataclass(frozen=True)
class _Section:
    start: int
    end: int
    heading_path: tuple[str, ...]


def chunk_markdown(
    markdown: str, pages: Sequence[PageSpan] = (), config: ChunkingConfig = ChunkingConfig()
) -> list[Chunk]:
    spans: list[tuple[int, int, tuple[str, ...]]] = []
    for section in _sections(markdown):
        units = _units(markdown, section.start, section.end, config.max_tokens)
        spans.extend((s, e, section.heading_path) for s, e in _pack(markdown, units, config))
    page_starts = [p.start for p in pages]
    chunks = []
    for ordinal, (start, end, path) in enumerate(spans):
        text = markdown[start:end]
        chunks.append(Chunk(ordinal, text, count_tokens(text), path,
                            _pages_of(pages, page_starts, start, end), start, end))
    return chunks


def _sections(markdown: str) -> list[_Section]:
    """Split at ATX headings outside fenced code; each section starts with its heading."""
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []
    start, path, in_fence, offset = 0, (), False, 0
    for line in markdown.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _HEADING.match(line.rstrip("\n"))):
            if markdown[start:offset].strip():
                sections.append(_Section(start, offset, path))
            level = len(m.group(1))
            stack = [(lvl, title) for lvl, title in stack if lvl < level] + [(level, m.group(2).strip())]
            start, path = offset, tuple(title for _, title in stack)
        offset += len(line)
    if markdown[start:].strip():
        sections.append(_Section(start, len(markdown), path))
    return sections


def _units(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int, int, int]]:
    """(start, end, tokens, group) of paragraphs, split further until each fits
    ``max_tokens``. Pieces of one split paragraph share a group number; whole paragraphs
    have group -1."""
    units = []
    for group, (p_start, p_end) in enumerate(_split(text, start, end, _BLANK_LINES)):
        tokens = count_tokens(text[p_start:p_end])
        if tokens <= max_tokens:
            units.append((p_start, p_end, tokens, -1))
            continue
        for s_start, s_end in _split(text, p_start, p_end, _SENTENCE_END):
            tokens = count_tokens(text[s_start:s_end])
            if tokens <= max_tokens:
                units.append((s_start, s_end, tokens, group))
            else:
                units.extend((*piece, group) for piece in _token_pieces(text, s_start, s_end, max_tokens))
    return units


def _split(text: str, start: int, end: int, separator: re.Pattern[str]) -> list[tuple[int, int]]:
    """Non-blank spans of text[start:end] between separator matches, trimmed of whitespace."""
    pieces, cursor = [], start
    for m in separator.finditer(text, start, end):
        pieces.append((cursor, m.start()))
        cursor = m.end()
    pieces.append((cursor, end))
    out = []
    for s, e in pieces:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            out.append((s, e))
    return out


def _token_pieces(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int, int]]:
    """Cut a span with no usable sentence breaks at token boundaries (exact substrings)."""
    tokens = encoding().encode_ordinary(text[start:end])
    _, offsets = encoding().decode_with_offsets(tokens)
    pieces, i = [], 0
    while i < len(tokens):
        j = min(i + max_tokens, len(tokens))
        while True:
            s = start + offsets[i]
            e = start + offsets[j] if j < len(tokens) else end
            n = count_tokens(text[s:e])
            if n <= max_tokens or j - i <= 1:
                break
            j -= max(1, (n - max_tokens))
        if e > s:
            pieces.append((s, e, n))
        i = j
    return pieces


def _pack(text: str, units: list[tuple[int, int, int, int]], config: ChunkingConfig) -> list[tuple[int, int]]:
    """Greedy packing of units into chunks, with a sentence- or word-aligned overlap.

    A paragraph that had to be split never shares a chunk with its neighbours, so an edit
    in one paragraph moves chunk boundaries only inside that paragraph: the other chunks
    keep their exact text and their vectors are reused.
    """
    chunks: list[tuple[int, int]] = []
    i = 0
    start = None  # start of the current chunk (an overlap may begin before units[i])
    while i < len(units):
        if start is None:
            start = units[i][0]
        budget = config.max_tokens - (count_tokens(text[start:units[i][0]]) if start < units[i][0] else 0)
        j, total = i, 0
        while j < len(units) and (
            j == i or (total + units[j][2] + 1 <= budget and units[j][3] == units[j - 1][3])
        ):
            total += units[j][2] + (1 if j > i else 0)
            j += 1
        # verify on the real text and shrink: concatenation can add tokens
        while True:
            end = units[j - 1][1]
            if count_tokens(text[start:end]) <= config.max_tokens:
                break
            if j - 1 > i:
                j -= 1
            elif start < units[i][0]:
                start = units[i][0]  # drop the overlap before dropping content
            else:
                break  # a single unit, already known to fit
        chunks.append((start, end))
        i = j
        start = _overlap_start(text, start, end, units[i][0], config.overlap_tokens) if i < len(units) else None
    return chunks


def _overlap_start(text: str, chunk_start: int, chunk_end: int, next_start: int, overlap: int) -> int:
    """Where the next chunk begins: the tail of this one, up to ``overlap`` tokens, starting
    at a sentence boundary if possible, else at a word boundary."""
    if overlap <= 0:
        return next_start
    window_start = max(chunk_start, chunk_end - overlap * 8)  # ~8 chars/token upper bound
    tail = text[window_start:chunk_end]
    for boundaries in (
        [m.end() for m in _SENTENCE_END.finditer(tail)],
        [m.end() for m in re.finditer(r"\s+", tail)],
    ):
        for b in boundaries:
            candidate = window_start + b
            if candidate < chunk_end and count_tokens(text[candidate:chunk_end]) <= overlap:
                return candidate
    return next_start


def _pages_of(pages: Sequence[PageSpan], starts: list[int], start: int, end: int) -> tuple[int, ...]:
    if not pages:
        return ()
    first = max(0, bisect.bisect_right(starts, start) - 1)
    out = []
    for page in pages[first:]:
        if page.start >= end:
            break
        if page.end > start:
            out.append(page.page)
    return tuple(out)
