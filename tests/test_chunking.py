"""The chunker's hard guarantees, on hand-made and seeded random Markdown."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from ingestflow.pipeline.chunking import (
    HARD_LIMIT,
    Chunk,
    ChunkingConfig,
    chunk_input,
    _headings,
    chunk_markdown,
    context_line,
)
from ingestflow.services.base import PageSpan
from ingestflow.tokens import count_tokens

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "lambda", "install",
         "linux", "windows", "config", "token", "vector", "search", "index", "parser", "chunk",
         "embed", "store", "query", "page", "error", "retry"]
DEFAULT = ChunkingConfig()


def heading_only(markdown: str, start: int, end: int) -> bool:
    """Whether markdown[start:end] holds nothing but heading lines (outside code fences)."""
    lines = {offset for offset, _, _ in _headings(markdown)}
    pos = start
    for line in markdown[start:end].split("\n"):
        if line.strip() and pos + len(line) - len(line.lstrip(" ")) not in lines and pos not in lines:
            return False
        pos += len(line) + 1
    return True


def check(markdown: str, config: ChunkingConfig = DEFAULT,
          pages: tuple[PageSpan, ...] = (), title: str = "") -> list[Chunk]:
    """Chunk and assert every guarantee; returns the chunks for further checks."""
    chunks = chunk_markdown(markdown, pages, config, title)
    assert chunk_markdown(markdown, pages, config, title) == chunks  # deterministic
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    covered = bytearray(len(markdown) + 1)
    for c in chunks:
        assert c.text, c
        assert markdown[c.char_start:c.char_end] == c.text
        assert c.context == context_line(title, c.heading_path, config.max_tokens)
        assert c.token_count == count_tokens(chunk_input(c.context, c.text))
        assert c.token_count <= config.max_tokens <= HARD_LIMIT
        # No chunk is only a heading, unless the document is nothing but headings (or
        # chunks are too small to hold a heading and a word: below the smallest setting).
        assert not heading_only(markdown, c.char_start, c.char_end) or config.max_tokens < 16 or (
            len(chunks) == 1 and heading_only(markdown, 0, len(markdown))), c.text
        covered[c.char_start:c.char_end] = b"\x01" * (c.char_end - c.char_start)
    dropped = [i for i, ch in enumerate(markdown) if not ch.isspace() and not covered[i]]
    assert not dropped, f"dropped chars at {dropped[:10]}: {markdown[dropped[0]:dropped[0] + 40]!r}"
    for a, b in pairwise(chunks):
        assert a.char_start < b.char_start and a.char_end < b.char_end  # document order
        if b.char_start < a.char_end:  # an overlap: same section, bounded, a tail of a
            assert a.heading_path == b.heading_path
            # (headings left at a section's end take text along whatever the overlap)
            assert (count_tokens(markdown[b.char_start:a.char_end]) <= config.overlap_tokens
                    or heading_only(markdown, a.char_end, b.char_end))
    if not markdown.strip():
        assert chunks == []
    return chunks


def prose(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 30))]
        out.append(" ".join(words).capitalize() + rng.choice(".!?"))
    return " ".join(out)


def random_markdown(rng: random.Random) -> str:
    """Headings, fences with '#' lines, lists, tables, CJK, emoji, odd whitespace."""
    blocks = []
    for _ in range(rng.randint(0, 30)):
        kind = rng.randrange(9)
        if kind == 0:
            blocks.append("#" * rng.randint(1, 6) + " " + rng.choice(WORDS).title())
        elif kind == 1:
            body = "\n".join(rng.choice(["# not a heading", "x = 1  # comment", "", "  ## no"])
                             for _ in range(rng.randint(1, 12)))
            blocks.append(f"```python\n{body}\n```")
        elif kind == 2:
            blocks.append("\n".join(f"- {prose(rng, 1)}" for _ in range(rng.randint(1, 40))))
        elif kind == 3:
            blocks.append("日本語の文章です。" * rng.randint(1, 200))
        elif kind == 4:
            blocks.append("".join(rng.choice("ab🎉é \t") for _ in range(rng.randint(1, 3000))))
        elif kind == 5:
            blocks.append("| a | b |\n|---|---|\n" + "\n".join("| 1 | 2 |" for _ in range(50)))
        elif kind == 6:
            blocks.append(" \t \n\r\n ")
        else:
            blocks.append(prose(rng, rng.randint(1, 60)))
    sep = rng.choice(["\n\n", "\n", "\r\n\r\n", "\n\n\n  \n"])
    return sep.join(blocks)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        ChunkingConfig(max_tokens=100, overlap_tokens=100)
    with pytest.raises(ValueError):
        ChunkingConfig(max_tokens=HARD_LIMIT + 1)
    with pytest.raises(ValueError):
        ChunkingConfig(max_tokens=3, overlap_tokens=0)
    with pytest.raises(ValueError):
        ChunkingConfig(max_tokens=100, overlap_tokens=-1)


@pytest.mark.parametrize("markdown", ["", " ", "\n\n\t \r\n", "\u2028 \x0c"])
def test_blank_input_gives_no_chunks(markdown: str) -> None:
    assert chunk_markdown(markdown) == []


def test_small_document_is_one_chunk() -> None:
    chunks = check("Hello world. This is short.")
    assert [(c.text, c.heading_path, c.pages) for c in chunks] == [
        ("Hello world. This is short.", (), ())]


def test_heading_paths_follow_the_heading_stack() -> None:
    md = ("Intro text.\n\n# Guide\n\nGuide text.\n\n## Install\n\nInstall text.\n\n"
          "### Linux ###\n\nLinux text.\n\n### Windows\n\nWin text.\n\n## Use\n\nUse text.\n\n"
          "# Reference\n\nRef text.")
    chunks = check(md)
    paths = {c.text.split("\n")[-1]: c.heading_path for c in chunks}
    assert paths == {
        "Intro text.": (),
        "Guide text.": ("Guide",),
        "Install text.": ("Guide", "Install"),
        "Linux text.": ("Guide", "Install", "Linux"),
        "Win text.": ("Guide", "Install", "Windows"),
        "Use text.": ("Guide", "Use"),
        "Ref text.": ("Reference",),
    }
    assert chunks[1].text.startswith("# Guide")  # the heading line stays with its section


def test_hash_lines_inside_code_fences_are_not_headings() -> None:
    md = ("# Real\n\n```bash\n# not a heading\necho hi\n```\n\n~~~\n## also not\n~~~\n\n"
          "after\n\n# Next\n\nnext")
    chunks = check(md)
    assert [c.heading_path for c in chunks] == [("Real",), ("Next",)]
    assert "# not a heading" in chunks[0].text and "## also not" in chunks[0].text


def test_inline_triple_backticks_do_not_open_a_fence() -> None:
    chunks = check("Use ```x``` inline.\n\n```a``` too\n\n# Later\n\ntext")
    assert chunks[-1].heading_path == ("Later",)


def test_unclosed_fence_runs_to_the_end() -> None:
    chunks = check("# Top\n\n```\n# inside\n\nstill code")
    assert {c.heading_path for c in chunks} == {("Top",)}


def test_hashtags_and_indented_code_are_not_headings() -> None:
    chunks = check("#hashtag text\n\n    # indented code\n\nplain")
    assert {c.heading_path for c in chunks} == {()}


def test_chunks_never_cross_a_heading() -> None:
    rng = random.Random(7)
    md = "\n\n".join(f"## H{i}\n\n{prose(rng, 40)}" for i in range(10))
    chunks = check(md, ChunkingConfig(128, 16))
    for c in chunks:
        assert c.text.count("## H") <= 1
        if "## H" in c.text:
            assert c.text.startswith("## H")


def test_big_paragraphs_pack_up_to_the_limit_with_bounded_overlap() -> None:
    rng = random.Random(1)
    md = "\n\n".join(prose(rng, rng.randint(1, 12)) for _ in range(200))
    config = ChunkingConfig(200, 30)
    chunks = check(md, config)
    assert len(chunks) > 10
    assert sum(c.token_count for c in chunks) / len(chunks) > 0.6 * config.max_tokens
    overlaps = 0
    for a, b in pairwise(chunks):
        if b.char_start < a.char_end:
            tail = md[b.char_start:a.char_end]
            assert 0 < count_tokens(tail) <= config.overlap_tokens
            assert b.char_start > a.char_start
            assert md[b.char_start - 1].isspace()  # starts at a word
            overlaps += 1
    # Only a next paragraph that nearly fills a chunk on its own leaves no room for one.
    assert overlaps >= 0.9 * (len(chunks) - 1)


def test_zero_overlap_means_disjoint_chunks() -> None:
    rng = random.Random(2)
    chunks = check(prose(rng, 300), ChunkingConfig(100, 0))
    assert all(b.char_start >= a.char_end for a, b in pairwise(chunks))


def test_huge_paragraph_without_punctuation() -> None:
    rng = random.Random(3)
    md = " ".join(rng.choice(WORDS) for _ in range(30_000))
    chunks = check(md, ChunkingConfig(512, 64))
    assert len(chunks) > 30
    assert all(c.token_count > 400 for c in chunks[:-1])


def test_single_20000_token_word() -> None:
    rng = random.Random(4)
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(60_000))
    assert count_tokens(word) > 20_000
    chunks = check(f"# Blob\n\n{word}\n\ntail.", ChunkingConfig(512, 64))
    assert all(c.heading_path == ("Blob",) for c in chunks)
    assert max(c.token_count for c in chunks) <= 512
    assert len(chunks) > 40


def test_text_too_long_for_the_encoder_in_one_piece() -> None:
    """bpe-openai refuses > 200,000 tokens in one call: the chunker must never ask."""
    md = "🎉" * 80_000 + " " + "x" * 300_000
    check(md, ChunkingConfig(HARD_LIMIT, 100))


def test_cjk_text_splits_at_sentences() -> None:
    md = "# 日本語\n\n" + "これは日本語の文章です。とても長い段落になります！" * 400
    chunks = check(md, ChunkingConfig(256, 32))
    assert len(chunks) > 5
    assert all(c.heading_path == ("日本語",) for c in chunks)
    for c in chunks[:-1]:
        assert c.text.endswith(("。", "！")), c.text[-10:]


def test_long_list_splits_at_item_lines() -> None:
    md = "\n".join(f"- item number {i} with some words" for i in range(2000))
    chunks = check(md, ChunkingConfig(128, 16))
    for c in chunks:
        assert c.text.startswith("- item number") and c.text.endswith("words")


def test_emoji_and_tiny_limits() -> None:
    md = "🎉é" * 500 + "\n\n" + "a🎉" * 300
    for config in (ChunkingConfig(4, 0), ChunkingConfig(5, 2), ChunkingConfig(16, 8)):
        check(md, config)


def test_hard_limit_never_exceeded_with_max_config() -> None:
    rng = random.Random(5)
    md = "\n\n".join(prose(rng, 200) for _ in range(10))
    chunks = check(md, ChunkingConfig(HARD_LIMIT, 200))
    assert all(c.token_count <= HARD_LIMIT for c in chunks)


def test_page_mapping() -> None:
    p1 = "Page one text. " * 50
    p2 = "Page two text. " * 50
    p3 = "Page three text. " * 50
    md = p1 + "\n\n" + p2 + "\n\n" + p3
    a, b = len(p1) + 2, len(p1) + 2 + len(p2) + 2
    pages = (PageSpan(1, 0, a), PageSpan(2, a, b), PageSpan(3, b, len(md)))
    chunks = check(md, ChunkingConfig(100, 10), pages)
    for c in chunks:
        expected = tuple(p.page for p in pages if p.start < c.char_end and c.char_start < p.end)
        assert c.pages == expected and c.pages
    assert chunks[0].pages == (1,) and chunks[-1].pages == (3,)
    assert all(len(c.pages) == 1 for c in chunks)  # page breaks are chunk boundaries
    whole = check(md, ChunkingConfig(2000, 0), tuple(reversed(pages)))  # order-insensitive
    assert [c.pages for c in whole] == [(1,), (2,), (3,)]


def test_page_mapping_with_a_long_first_page() -> None:
    md = "x. " * 2000
    pages = (PageSpan(1, 0, len(md)), PageSpan(2, 10, 20))
    chunks = check(md, ChunkingConfig(64, 8), pages)
    assert all(1 in c.pages for c in chunks)
    assert chunks[0].pages == (1,) and chunks[1].pages == (1, 2)


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_keep_every_guarantee(seed: int) -> None:
    rng = random.Random(seed)
    md = random_markdown(rng)
    max_tokens = rng.choice([8, 32, 100, 256, 512])
    config = ChunkingConfig(max_tokens, rng.randrange(0, max_tokens // 2 + 1))
    pages = ()
    if md and rng.random() < 0.5:
        cuts = sorted({0, len(md), *(rng.randrange(len(md)) for _ in range(5))})
        pages = tuple(PageSpan(i + 1, s, e) for i, (s, e) in enumerate(pairwise(cuts)))
    chunks = check(md, config, pages)
    for c in chunks:
        if pages:
            assert c.pages == tuple(p.page for p in pages
                                    if p.start < c.char_end and c.char_start < p.end)


def test_page_breaks_are_chunk_boundaries() -> None:
    texts = [f"Page {p} " + "words and more words. " * 30 for p in (1, 2, 3)]
    md = "\n\n".join(texts)
    spans, offset = [], 0
    for p, text in enumerate(texts, start=1):
        spans.append(PageSpan(p, offset, offset + len(text)))
        offset += len(text) + 2
    chunks = check(md, ChunkingConfig(512, 32), tuple(spans))
    assert [c.pages for c in chunks] == [(1,), (2,), (3,)]  # each page fits one chunk; none spans two


def test_edit_inside_one_paragraph_keeps_other_chunks() -> None:
    paras = [" ".join(f"Paragraph {p} sentence {s}." for s in range(60)) for p in range(4)]
    before = chunk_markdown("\n\n".join(paras), config=ChunkingConfig(64, 0))
    paras[1] = paras[1].replace("sentence 3.", "sentence three, now longer than before.")
    after = chunk_markdown("\n\n".join(paras), config=ChunkingConfig(64, 0))
    changed = {c.text for c in after} - {c.text for c in before}
    assert changed and all(c.startswith("Paragraph 1") for c in changed)


# -- no chunk is only a heading ----------------------------------------------------------


def test_a_heading_with_nothing_under_it_joins_the_next_section() -> None:
    chunks = check("# Kitchen Notebook\n\n# Sourdough\n\nFeed the starter.\n\n## Jams\n### Plum\n\nPlum jam sets.")
    assert [(c.text, c.heading_path) for c in chunks] == [
        ("# Kitchen Notebook\n\n# Sourdough\n\nFeed the starter.", ("Sourdough",)),
        ("## Jams\n### Plum\n\nPlum jam sets.", ("Sourdough", "Jams", "Plum")),
    ]


def test_a_last_bare_heading_joins_the_section_before() -> None:
    chunks = check("# Guide\n\nSome text.\n\n## Appendix\n")
    assert [c.text for c in chunks] == ["# Guide\n\nSome text.\n\n## Appendix"]
    assert [c.text for c in check("# Only\n\n## Headings")] == ["# Only\n\n## Headings"]  # nothing else


def test_a_heading_at_the_foot_of_a_page_travels_to_the_next() -> None:
    p1, p2 = "Text of page one. " * 20 + "\n\n## Ambulance services", "The copay is $180 per one-way trip."
    md = f"{p1}\n\n{p2}"
    pages = (PageSpan(1, 0, len(p1)), PageSpan(2, len(p1) + 2, len(md)))
    chunks = check(md, ChunkingConfig(512, 0), pages)
    assert chunks[-1].text == f"## Ambulance services\n\n{p2}" and chunks[-1].pages == (1, 2)
    assert chunks[-1].heading_path == ("Ambulance services",)


@pytest.mark.parametrize("gap", ["\n\n", "\n"])
def test_a_heading_fits_with_the_start_of_a_long_paragraph(gap: str) -> None:
    body = " ".join(f"Finding {i} concerns the eastern warehouse and its loading docks." for i in range(200))
    for config in (ChunkingConfig(32, 0), ChunkingConfig(127, 15), ChunkingConfig(512, 64)):
        chunks = check(f"## A fairly long heading about the warehouse findings{gap}{body}", config)
        assert chunks[0].text.startswith("## A fairly long heading") and "Finding 0" in chunks[0].text


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_of_headings_never_give_a_heading_alone(seed: int) -> None:
    rng = random.Random(1000 + seed)
    blocks = []
    for _ in range(rng.randint(1, 40)):
        if rng.random() < 0.4:
            blocks.append("#" * rng.randint(1, 4) + " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))))
        else:
            blocks.append(prose(rng, rng.randint(1, 25)))
    md = rng.choice(["\n\n", "\n"]).join(blocks)
    max_tokens = rng.choice([127, 512])  # (a stack of headings must fit a chunk with some text)
    pages = ()
    if rng.random() < 0.5:
        cuts = sorted({0, len(md), *(rng.randrange(len(md)) for _ in range(4))})
        pages = tuple(PageSpan(i + 1, s, e) for i, (s, e) in enumerate(pairwise(cuts)))
    check(md, ChunkingConfig(max_tokens, rng.randrange(0, max_tokens // 2)), pages, title=rng.choice(["", "Guide"]))
