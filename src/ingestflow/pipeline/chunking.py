"""Token-aware, Markdown-aware chunking with exact cl100k_base counts.

Splits at ATX headings first (a chunk never spans two sections, and carries its heading
path), then packs paragraphs greedily; a paragraph too big for a chunk is split at
sentences, then at line breaks, and what is still too big at token boundaries. Chunks are
exact substrings of the Markdown (their char offsets are kept), and every non-blank
character lands in some chunk.

No chunk is only a heading: a heading travels with the text under it, and a heading with
nothing under it joins the next section (the last one, the section before it). Only a
document made of nothing but headings is chunked as such.

What is embedded for a chunk is its *input*: a context line (the document's title and
the chunk's heading path) before its text, so that a short chunk still says what it is
about. The title is stored once per document, the heading path with the chunk, and the
text stays the passage a reader sees. No input has more than ``max_tokens`` tokens,
counted on the final text (the count of a concatenation is not the sum of the counts, so
each chunk is verified and shrunk if needed): the embedder refuses, never truncates.

Speed: every piece of text is counted a small, bounded number of times (once per split
level it passes through, plus one verification per chunk); the whole document is never
re-encoded per chunk.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ingestflow.catalogue import MAX_CHUNK_TOKENS as HARD_LIMIT
from ingestflow.services.base import PageSpan
from ingestflow.tokens import count_tokens, encoding

MIN_TOKENS = 4  # one character is at most 4 UTF-8 bytes, so at most 4 tokens
# What cut a document's chunks is recorded with them (``ChunkingConfig.signature``); a
# document cut by another rule or size is re-chunked by ``ingestflow reembed``.
# Rule 1: headings could be chunks of their own and inputs had no context line.
RULE = 2
# A context line takes at most this share of a chunk's tokens, and chunks smaller than
# CONTEXT_MIN_TOKENS carry none: it would crowd out the passage.
CONTEXT_SHARE = 4
CONTEXT_MIN_TOKENS = 32
_TITLE_CHARS = 200  # a title longer than this is cut (a file's metadata can hold anything)

# BPE on one long run without breaks is slow (superlinear), so spans longer than this are
# split further before they are encoded; a character is at most 4 tokens.
_SAFE_CHARS = 40_000

# A heading or fence marker line (CommonMark: up to 3 spaces of indentation).
_MARKER = re.compile(r"^ {0,3}(?:(#{1,6})(?=[ \t\r]|$)(.*)|(`{3,}|~{3,})(.*))$", re.MULTILINE)
_HEADING_LINE = re.compile(r" {0,3}#{1,6}(?:[ \t][^\n]*)?")
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

    @property
    def signature(self) -> dict[str, int]:
        """What cuts the chunks, recorded with each document's chunks."""
        return {"rule": RULE, "max_tokens": self.max_tokens, "overlap_tokens": self.overlap_tokens}


@dataclass(frozen=True)
class Chunk:
    ordinal: int  # 0..n-1 in document order
    text: str
    token_count: int  # exact cl100k_base count of the input: context line and text
    context: str  # the context line before the text in the input ("" for none)
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


def chunk_markdown(markdown: str, pages: Sequence[PageSpan] = (), config: ChunkingConfig = ChunkingConfig(),
                   title: str = "") -> list[Chunk]:
    """Chunks of ``markdown`` in document order (``[]`` for blank input); ``title`` (see
    ``document_title``) begins every chunk's context line."""
    pages = sorted(pages, key=lambda p: (p.start, p.end))
    page_starts = [p.start for p in pages]
    chunks: list[Chunk] = []
    for section in _join_bare_headings(markdown, _split_at_pages(_sections(markdown), page_starts)):
        context = context_line(title, section.heading_path, config.max_tokens)
        for start, end, tokens in _pack_with_context(markdown, section, context, config):
            chunks.append(Chunk(len(chunks), markdown[start:end], tokens, context, section.heading_path,
                                _pages_of(pages, page_starts, start, end), start, end))
    return chunks


def _pack_with_context(markdown: str, section: _Section, context: str, config: ChunkingConfig) -> list[_Unit]:
    """The section's chunks, sized so that each input (context line and text) fits
    ``max_tokens``; returns (start, end, exact input tokens)."""
    budget = config.max_tokens - (count_tokens(chunk_input(context, "")) if context else 0)
    while True:
        units, groups = _paragraph_units(markdown, section.start, section.end, budget)
        packed = _pack(markdown, units, groups, ChunkingConfig(budget, min(config.overlap_tokens, budget - 1)))
        if not context:
            return packed
        counted = [(s, e, count_tokens(chunk_input(context, markdown[s:e]))) for s, e, _ in packed]
        excess = max(n for _, _, n in counted) - config.max_tokens
        if excess <= 0:
            return counted
        budget -= excess  # a join counted more than its parts: rare, and one more pass fits


def chunk_input(context: str, text: str) -> str:
    """What is embedded for a chunk: its context line, then its text. (Its keyword index
    holds the same words, weighted: see chunk_search_vector, migration 0016.)"""
    return f"{context}\n\n{text}" if context else text


@lru_cache(maxsize=4096)
def context_line(title: str, heading_path: tuple[str, ...], max_tokens: int) -> str:
    """"Title > Heading > Subheading", within a share of ``max_tokens``: the middle of a deep
    path goes first (the title and the nearest heading say the most), then words from the
    end. A heading that repeats the title (a document's first H1 often is) is said once."""
    if max_tokens < CONTEXT_MIN_TOKENS:
        return ""
    parts: list[str] = []
    for part in (title, *heading_path):
        if part and (not parts or part.casefold() != parts[-1].casefold()):
            parts.append(part)
    cap = max_tokens // CONTEXT_SHARE
    line = " > ".join(parts)
    while count_tokens(line) > cap and len(parts) > 2:
        del parts[1]
        line = " > ".join(parts)
    if count_tokens(line) > cap:
        words = line[:cap * 8].split(" ")  # a token is rarely 8 characters
        while len(words) > 1 and count_tokens(" ".join(words)) > cap:
            words.pop()
        line = " ".join(words)
        while count_tokens(line) > cap:  # one word longer than the cap
            line = line[:-1]
    return line.strip()


def document_title(markdown: str, declared: str | None, source_name: str) -> str:
    """A document's title, said before each of its chunks: its first level-1 heading, else
    the title its file declares (PDF, DOCX or HTML metadata), else its file name without
    the extension. The name of a file says less than its own heading, which says what a
    reader sees first."""
    for _, hashes, text in _headings(markdown):
        if len(hashes) == 1 and (heading := _title(text)):
            return _short_title(heading)
    if declared and declared.strip():
        return _short_title(declared)
    name = re.sub(r"\.[A-Za-z0-9]{1,8}$", "", source_name.replace("\\", "/").rsplit("/", 1)[-1])
    return _short_title(re.sub(r"[_\s]+", " ", name))


def _short_title(text: str) -> str:
    return " ".join(text.split())[:_TITLE_CHARS]


# -- sections ---------------------------------------------------------------------------


def _headings(markdown: str) -> Iterator[tuple[int, str, str]]:
    """(offset, hashes, raw text) of each ATX heading outside fenced code."""
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
        if not fence:
            yield m.start(), hashes, title


def _sections(markdown: str) -> list[_Section]:
    """Split at ATX headings outside fenced code; each section starts with its heading."""
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []  # (level, title) of the open headings
    start, path = 0, ()
    for offset, hashes, title in _headings(markdown):
        if markdown[start:offset].strip():
            sections.append(_Section(start, offset, path))
        level = len(hashes)
        stack = [(lvl, t) for lvl, t in stack if lvl < level] + [(level, _title(title))]
        start, path = offset, tuple(t for _, t in stack if t)
    if markdown[start:].strip():
        sections.append(_Section(start, len(markdown), path))
    return sections


def _join_bare_headings(markdown: str, sections: list[_Section]) -> list[_Section]:
    """A section that is only its heading line (or a page piece that is only a heading,
    printed at the foot of a page) joins the section after it, with that section's path;
    a bare heading at the very end joins the section before it."""
    lines = [(offset, end if (end := markdown.find("\n", offset)) >= 0 else len(markdown))
             for offset, _, _ in _headings(markdown)]
    starts = [start for start, _ in lines]
    out: list[_Section] = []
    carried: int | None = None  # where the bare headings waiting for text begin
    for section in sections:
        if _only_headings(markdown, section.start, section.end, lines, starts):
            carried = section.start if carried is None else carried
            continue
        if carried is not None:
            section, carried = _Section(carried, section.end, section.heading_path), None
        out.append(section)
    if carried is not None:
        last = out.pop() if out else _Section(carried, sections[-1].end, sections[-1].heading_path)
        out.append(_Section(last.start, sections[-1].end, last.heading_path))
    return out


def _only_headings(text: str, start: int, end: int, lines: list[tuple[int, int]], starts: list[int]) -> bool:
    """Whether every visible character of ``text[start:end]`` is on a heading line."""
    pos = start
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return True
        line = bisect.bisect_right(starts, pos) - 1
        if line < 0 or lines[line][1] <= pos:
            return False
        pos = lines[line][1]


def _is_heading_line(text: str, start: int, end: int) -> bool:
    return _HEADING_LINE.fullmatch(text, start, end) is not None


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
    their exact text, and their vectors are reused on re-ingest.

    Heading lines travel with their text: those the section begins with share the group
    of the paragraph after them, which is cut small enough to fit one chunk with them;
    those it ends with (a last bare heading) share the group of the paragraph before."""
    units: list[_Unit] = []
    groups: list[int] = []
    paragraphs = _peel_headings(text, _split(text, start, end, _SPLITTERS[0]))
    lead = 0  # the heading lines the section begins with
    while lead < len(paragraphs) - 1 and _is_heading_line(text, *paragraphs[lead]):
        lead += 1
    first_of_lead = 0
    for n, (s, e) in enumerate(paragraphs):
        budget = max_tokens
        if n == lead and lead:
            first_of_lead = len(units)
            headings = _count(text, paragraphs[0][0], s)  # with the gaps after them
            if headings is not None and max_tokens - headings - 1 >= MIN_TOKENS:
                budget = max_tokens - headings - 1
        tokens = _count(text, s, e)
        if tokens is not None and tokens <= budget:
            units.append((s, e, tokens))
            groups.append(-1)
        else:
            pieces = _fit(text, s, e, budget, 1)
            units.extend(pieces)
            groups.extend([n] * len(pieces))
    for i in range(first_of_lead):
        groups[i] = groups[first_of_lead]
    tail = len(units)
    while tail > 1 and _is_heading_line(text, units[tail - 1][0], units[tail - 1][1]):
        tail -= 1
    for i in range(tail, len(units)):
        groups[i] = groups[tail - 1]
    return units, groups


def _peel_headings(text: str, paragraphs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Heading lines at a section's start or end as paragraphs of their own, also where no
    blank line parts them from the text (a heading line is only ever there)."""
    if not paragraphs:
        return paragraphs
    head: list[tuple[int, int]] = []
    s, e = paragraphs[0]
    while (cut := text.find("\n", s, e)) >= 0 and _is_heading_line(text, *_trim(text, s, cut)):
        head.append(_trim(text, s, cut))
        s, e = _trim(text, cut, e)
    body = [*head, (s, e), *paragraphs[1:]]
    s, e = body[-1]
    tail: list[tuple[int, int]] = []
    while (cut := text.rfind("\n", s, e)) >= 0 and _is_heading_line(text, *_trim(text, cut, e)):
        tail.insert(0, _trim(text, cut, e))
        s, e = _trim(text, s, cut)
    return [*body[:-1], (s, e), *tail]


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
        # Leave room for the next unit: a smaller overlap beats none. Headings left at
        # the end of a section, which did not fit with the text before them, take some of
        # it along whatever the overlap: they are never a chunk alone.
        room = config.max_tokens - units[i][2] - 1 if i < len(units) else 0
        overlap = config.overlap_tokens
        if i < len(units) and all(_is_heading_line(text, s, e) for s, e, _ in units[i:]):
            overlap = room
        if min(room, overlap) > 0:
            start = _overlap_start(text, start_of_tail=chunks[-1][0], end=end, overlap=min(room, overlap))
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
