"""Token-aware, Markdown-aware chunking with exact cl100k_base counts.

Splits at ATX headings first (a chunk never spans two sections, and carries its heading
path), then packs paragraphs greedily; a paragraph too big for a chunk is split at
sentences, then at line breaks, and what is still too big at token boundaries. Chunks are
exact substrings of the Markdown (their char offsets are kept), every non-blank character
lands in some chunk, and no chunk has more than ``max_tokens`` tokens, counted on the final
text (the count of a concatenation is not the sum of the counts, so each chunk is verified
and shrunk if needed).

Speed: every piece of text is counted a small, bounded number of times (once per split
level it passes through, plus one verification per chunk); the whole document is never
re-encoded per chunk.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ingestflow.catalogue import MAX_CHUNK_TOKENS as HARD_LIMIT
from ingestflow.services.base import PageSpan
from ingestflow.tokens import count_tokens, encoding

MIN_TOKENS = 4  # one character is at most 4 UTF-8 bytes, so at most 4 tokens

# BPE on one long run without breaks is slow (superlinear), so spans longer than this are
# split further before they are encoded; a character is at most 4 tokens.
_SAFE_CHARS = 40_000

# A heading or fence marker line (CommonMark: up to 3 spaces of indentation).
_MARKER = re.compile(r"^ {0,3}(?:(#{1,6})(?=[ \t\r]|$)(.*)|(`{3,}|~{3,})(.*))$", re.MULTILINE)
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")

# Split levels, coarsest first. Each pattern's group 1 is the gap between two pieces and
# is always whitespace only, so splitting never drops a visible character.
_SPLITTERS = (
    re.compile(r"(\n[ \t\r\f\v]*\n\s*)"),  # paragraphs: blank lines
    re.compile(r"[.!?][\"'\u201d\u2019)\]]*(\s+)|[\u3002\uff01\uff1f][\u201d\u300d\u300f\uff09]*(\s*)"),
    re.compile(r"(\s*\n\s*)"),  # lines, for long lists and code
)
_SENTENCE_GAP = _SPLITTERS[1]
_LINE_GAP = re.compile(r"\n\s*")
_WORD_GAP = re.compile(r"\s+")


@dataclass(frozen=True)
class ChunkingConfig:
    max_tokens: int = 512
    overlap_tokens: int = 64

    def __post_init__(self) -> None:
        if not MIN_TOKENS <= self.max_tokens <= HARD_LIMIT:
            raise ValueError(f"max_tokens must be between {MIN_TOKENS} and {HARD_LIMIT}")
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ValueError("overlap_tokens must be >= 0 and smaller than max_tokens")


@dataclass(frozen=True)
class Chunk:
    ordinal: int  # 0..n-1 in document order
    text: str
    token_count: int  # exact cl100k_base count of text
    heading_path: tuple[str, ...]
    pages: tuple[int, ...]  # 1-based pages the text touches, () if the document has none
    char_start: int  # markdown[char_start:char_end] == text
    char_end: int


@dataclass(frozen=True)
class _Section:
    start: int
    end: int
    heading_path: tuple[str, ...]


# A unit is (start, end, tokens): a trimmed span that fits in one chunk on its own.
_Unit = tuple[int, int, int]


def chunk_markdown(
    markdown: str, pages: Sequence[PageSpan] = (), config: ChunkingConfig = ChunkingConfig()
) -> list[Chunk]:
    """Chunks of ``markdown`` in document order (``[]`` for blank input)."""
    pages = sorted(pages, key=lambda p: (p.start, p.end))
    page_starts = [p.start for p in pages]
    chunks: list[Chunk] = []
    for section in _split_at_pages(_sections(markdown), page_starts):
        units, groups = _paragraph_units(markdown, section.start, section.end, config.max_tokens)
        for start, end, tokens in _pack(markdown, units, groups, config):
            chunks.append(Chunk(len(chunks), markdown[start:end], tokens, section.heading_path,
                                _pages_of(pages, page_starts, start, end), start, end))
    return chunks


# -- sections ---------------------------------------------------------------------------


def _sections(markdown: str) -> list[_Section]:
    """Split at ATX headings outside fenced code; each section starts with its heading."""
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []  # (level, title) of the open headings
    start, path = 0, ()
    fence = ""  # the opening fence while inside a code block
    for m in _MARKER.finditer(markdown):
        hashes, title, marker, rest = m.groups()
        if marker is not None:
            if marker[0] == "`" and "`" in rest:
                continue  # an inline code span such as ```x```, not a fence (CommonMark)
            if not fence:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence) and not rest.strip():
                fence = ""
            continue
        if fence:
            continue
        if markdown[start:m.start()].strip():
            sections.append(_Section(start, m.start(), path))
        level = len(hashes)
        stack = [(lvl, t) for lvl, t in stack if lvl < level] + [(level, _title(title))]
        start, path = m.start(), tuple(t for _, t in stack if t)
    if markdown[start:].strip():
        sections.append(_Section(start, len(markdown), path))
    return sections


def _split_at_pages(sections: list[_Section], page_starts: list[int]) -> list[_Section]:
    """Page breaks are section boundaries too, so that a chunk cites the page it came from."""
    out = []
    for section in sections:
        cuts = [p for p in page_starts if section.start < p < section.end]
        bounds = [section.start, *cuts, section.end]
        out.extend(_Section(a, b, section.heading_path) for a, b in zip(bounds, bounds[1:])
                   if a < b)
    return out


def _title(raw: str) -> str:
    """Heading text without the optional closing ``#`` sequence."""
    return _CLOSING_HASHES.sub("", raw.strip())


# -- units: pieces that each fit a chunk -----------------------------------------------


def _count(text: str, start: int, end: int) -> int | None:
    """Token count of ``text[start:end]``, or None when the span is too long to encode
    safely; such a span is simply split further, which is always correct."""
    if end - start > _SAFE_CHARS:
        return None
    return count_tokens(text[start:end])


def _paragraph_units(text: str, start: int, end: int, max_tokens: int) -> tuple[list[_Unit], list[int]]:
    """Units of a section, and for each the paragraph it was split from (-1: a whole
    paragraph). Pieces of a split paragraph are never packed with other paragraphs, so an
    edit inside one paragraph moves chunk boundaries only inside it: the other chunks keep
    their exact text, and their vectors are reused on re-ingest."""
    units: list[_Unit] = []
    groups: list[int] = []
    for n, (s, e) in enumerate(_split(text, start, end, _SPLITTERS[0])):
        tokens = _count(text, s, e)
        if tokens is not None and tokens <= max_tokens:
            units.append((s, e, tokens))
            groups.append(-1)
        else:
            pieces = _fit(text, s, e, max_tokens, 1)
            units.extend(pieces)
            groups.extend([n] * len(pieces))
    if len(units) > 1 and text.startswith("#", units[0][0]) and "\n" not in text[units[0][0]:units[0][1]]:
        groups[0] = groups[1]  # a section's heading line travels with what follows it
    return units, groups


def _fit(text: str, start: int, end: int, max_tokens: int, level: int) -> list[_Unit]:
    """Trimmed units of ``text[start:end]``, each <= ``max_tokens``, split at the coarsest
    boundary that works: paragraphs, then sentences, then lines, then tokens."""
    units: list[_Unit] = []
    for s, e in _split(text, start, end, _SPLITTERS[level]):
        tokens = _count(text, s, e)
        if tokens is not None and tokens <= max_tokens:
            units.append((s, e, tokens))
        elif level + 1 < len(_SPLITTERS):
            units.extend(_fit(text, s, e, max_tokens, level + 1))
        else:
            units.extend(_token_pieces(text, s, e, max_tokens))
    return units


def _split(text: str, start: int, end: int, gaps: re.Pattern[str]) -> list[tuple[int, int]]:
    """Non-blank spans of ``text[start:end]`` between gaps, trimmed of whitespace."""
    spans, cursor = [], start
    for m in gaps.finditer(text, start, end):
        group = 1 if m.group(1) is not None else 2
        spans.append((cursor, m.start(group)))
        cursor = m.end(group)
    spans.append((cursor, end))
    return [t for s, e in spans if (t := _trim(text, s, e))[0] < t[1]]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _token_pieces(text: str, start: int, end: int, max_tokens: int) -> list[_Unit]:
    """Cut a span with no usable breaks at token boundaries. Works on bounded windows (the
    encoder refuses huge inputs) and maps tokens to char offsets so pieces stay exact
    substrings; every piece is re-counted on its final, trimmed text."""
    pieces: list[_Unit] = []
    pos = start
    window = max_tokens * 6
    while pos < end:
        window_end = min(end, pos + window)
        tokens = encoding().encode_ordinary(text[pos:window_end])
        if len(tokens) <= max_tokens and window_end < end and window < _SAFE_CHARS:
            window = min(_SAFE_CHARS, window * 2)  # tokens are long here: look further
            continue
        # Offsets of the first tokens only (a char is at most 4 tokens, so a cut after
        # token k is always found within k + 5); the sentinel when the window is all used.
        offsets = _token_starts(tokens[:max_tokens + 5])
        if len(tokens) <= max_tokens + 5:
            offsets.append(window_end - pos)
        k = min(max_tokens, len(tokens))
        while True:
            cut = pos + next(o for o in offsets[k:] if o > 0)  # never an empty piece
            s, e = _trim(text, pos, cut)
            n = count_tokens(text[s:e]) if s < e else 0
            if n <= max_tokens:
                break
            if k <= 1:  # one token's text still counts too many: take one character,
                cut = pos + 1  # which is at most 4 tokens <= MIN_TOKENS
                s, e = _trim(text, pos, cut)
                n = count_tokens(text[s:e]) if s < e else 0
                break
            k = max(1, k - (n - max_tokens))
        if s < e:
            pieces.append((s, e, n))
        window = max(64, (cut - pos) * 3 // 2)  # the next piece is likely similar in size
        pos = cut
    return pieces


# -- packing ----------------------------------------------------------------------------


def _pack(text: str, units: list[_Unit], groups: list[int], config: ChunkingConfig) -> list[_Unit]:
    """Greedy packing of one section's units into chunks, each starting with an overlap
    taken from the tail of the previous chunk. Returns (start, end, exact tokens)."""
    chunks: list[_Unit] = []
    i, start = 0, None  # start of the current chunk: an overlap may begin before units[i]
    while i < len(units):
        if start is None:
            start = units[i][0]
        start, j, tokens = _fill(text, units, groups, i, start, config.max_tokens)
        end = units[j - 1][1]
        chunks.append((start, end, tokens))
        i = j
        start = None
        # Leave room for the next unit: a smaller overlap beats none.
        room = config.max_tokens - units[i][2] - 1 if i < len(units) else 0
        if min(room, config.overlap_tokens) > 0:
            start = _overlap_start(text, start_of_tail=chunks[-1][0], end=end,
                                   overlap=min(room, config.overlap_tokens))
    return chunks


def _fill(
    text: str, units: list[_Unit], groups: list[int], i: int, start: int, max_tokens: int
) -> tuple[int, int, int]:
    """Take units i..j-1 (at least one) after ``start``; returns (start, j, exact tokens).
    Estimates with the per-unit counts, then verifies on the real text: shrinks when the
    joined text counts more, grows while the verified count leaves room (but never back
    past a unit it had to give back, so this ends)."""
    prefix = _count(text, start, units[i][0]) if start < units[i][0] else 0
    limit = len(units)
    j = _grow(text, units, groups, i + 1, limit, (prefix or 0) + units[i][2], max_tokens)
    while True:
        tokens = count_tokens(text[start:units[j - 1][1]])
        if tokens <= max_tokens:
            grown = _grow(text, units, groups, j, limit, tokens, max_tokens)
            if grown == j:
                return start, j, tokens
            j = grown  # the estimate was pessimistic: room for more, verify again
        elif j - 1 > i:
            j = limit = j - 1  # the joined text counts more than estimated: give one back
        elif start < units[i][0]:
            start = units[i][0]  # drop the overlap before dropping content
        else:
            return start, j, units[i][2]  # a single unit, already known to fit


def _grow(
    text: str, units: list[_Unit], groups: list[int], j: int, limit: int, total: int, max_tokens: int
) -> int:
    """Add units from j (below ``limit``) while the estimate fits: the unit counts plus one
    token per line-break gap after a word (an estimate only: the caller verifies)."""
    while j < limit and groups[j] == groups[j - 1]:
        # A line break after punctuation merges into the punctuation's token.
        gap = 1 if "\n" in text[units[j - 1][1]:units[j][0]] and text[units[j - 1][1] - 1].isalnum() else 0
        if total + gap + units[j][2] > max_tokens:
            break
        total += gap + units[j][2]
        j += 1
    return j


def _overlap_start(text: str, start_of_tail: int, end: int, overlap: int) -> int | None:
    """Where the next chunk begins: inside the tail of the chunk ``[start_of_tail, end)``,
    covering at most ``overlap`` tokens, at the first sentence start if there is one, else
    at a line start, a word start, or a token boundary. None when no such start exists."""
    window_start = max(start_of_tail + 1, end - overlap * 8)  # generous: ~4 chars/token
    if window_start >= end:
        return None
    tokens = encoding().encode_ordinary(text[window_start:end])
    first = end - _char_len(tokens[-overlap:]) if len(tokens) > overlap else window_start
    candidates = (
        lambda: (m.end(m.lastindex) for m in _SENTENCE_GAP.finditer(text, first, end)),
        lambda: (m.end() for m in _LINE_GAP.finditer(text, first, end)),
        lambda: (m.end() for m in _WORD_GAP.finditer(text, first, end)),
        lambda: (first + o for o in _token_starts(encoding().encode_ordinary(text[first:end]))),
    )
    for boundaries in candidates:
        for tries, b in enumerate(boundaries()):
            if tries == 4:
                break  # the first one nearly always verifies; do not scan the whole tail
            if first <= b < end and not text[b].isspace() and count_tokens(text[b:end]) <= overlap:
                return b
    return None


_CONTINUATION = bytes(range(0x80, 0xC0))


def _char_len(tokens: list[int]) -> int:
    """Whole characters in the text of ``tokens`` (a leading partial character not counted)."""
    return len(b"".join(encoding().decode_tokens_bytes(tokens)).translate(None, _CONTINUATION))


def _token_starts(tokens: list[int]) -> list[int]:
    """Char offset where each token starts (a token that starts inside a multi-byte
    character maps to that character), like ``decode_with_offsets`` but much faster."""
    offsets, chars = [], 0
    for data in encoding().decode_tokens_bytes(tokens):
        offsets.append(max(0, chars - (0x80 <= data[0] < 0xC0)))
        chars += len(data.translate(None, _CONTINUATION))
    return offsets


# -- pages ------------------------------------------------------------------------------


def _pages_of(pages: Sequence[PageSpan], starts: list[int], start: int, end: int) -> tuple[int, ...]:
    """Pages whose span shares at least one character with ``[start, end)``."""
    if not pages:
        return ()
    first = max(0, bisect.bisect_right(starts, start) - 1)
    # A long page that starts earlier may still reach into this chunk.
    while first > 0 and pages[first - 1].end > start:
        first -= 1
    found = {p.page for p in pages[first:bisect.bisect_left(starts, end)] if p.end > start}
    return tuple(sorted(found))
