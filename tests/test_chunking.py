"""Chunking guarantees on varied inputs: limits, exact substrings, coverage, headings, pages."""

from __future__ import annotations

import random

import pytest

from ingestflow.pipeline.chunking import HARD_LIMIT, ChunkingConfig, chunk_markdown
from ingestflow.services.base import PageSpan
from ingestflow.tokens import count_tokens


def check_guarantees(markdown: str, config: ChunkingConfig, pages: list[PageSpan] | None = None) -> list:
    chunks = chunk_markdown(markdown, pages or [], config)
    covered = bytearray(len(markdown))
    for i, c in enumerate(chunks):
        assert c.ordinal == i
        assert markdown[c.char_start:c.char_end] == c.text
        assert c.token_count == count_tokens(c.text) <= config.max_tokens <= HARD_LIMIT
        covered[c.char_start:c.char_end] = b"\x01" * (c.char_end - c.char_start)
    missing = [ch for ch, cov in zip(markdown, covered) if not cov and not ch.isspace()]
    assert not missing, f"text dropped: {''.join(missing)[:80]!r}"
    assert chunk_markdown(markdown, pages or [], config) == chunks  # deterministic
    return chunks


def random_markdown(rng: random.Random) -> str:
    words = ["alpha", "beta", "gamma", "delta", "ünïcode", "日本語", "naïve", "x" * 40, "#tag", "3.14"]
    parts = []
    for _ in range(rng.randint(1, 30)):
        kind = rng.random()
        if kind < 0.15:
            parts.append("#" * rng.randint(1, 6) + " " + " ".join(rng.choices(words, k=3)))
        elif kind < 0.25:
            parts.append("```\n# not a heading\n" + "code line\n" * rng.randint(1, 5) + "```")
        elif kind < 0.35:
            parts.append("\n".join("- " + " ".join(rng.choices(words, k=4)) for _ in range(rng.randint(1, 8))))
        else:
            sentence = lambda: " ".join(rng.choices(words, k=rng.randint(1, 30))) + rng.choice([".", "!", "?", ""])  # noqa: E731
            parts.append(" ".join(sentence() for _ in range(rng.randint(1, 60))))
    return ("\n\n" if rng.random() < 0.8 else "\n").join(parts)


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_keep_every_guarantee(seed: int) -> None:
    rng = random.Random(seed)
    max_tokens = rng.choice([16, 40, 128, 512])
    config = ChunkingConfig(max_tokens, rng.randint(0, max_tokens // 2))
    check_guarantees(random_markdown(rng), config)


def test_huge_unpunctuated_paragraph_and_giant_word() -> None:
    markdown = "# Dump\n\n" + " ".join(f"token{i}" for i in range(20_000)) + "\n\n" + "z" * 60_000
    chunks = check_guarantees(markdown, ChunkingConfig(512, 64))
    assert len(chunks) > 40 and max(c.token_count for c in chunks) <= 512


def test_cjk_without_spaces() -> None:
    check_guarantees("日本語の文章です。" * 3000, ChunkingConfig(100, 20))


def test_empty_input() -> None:
    assert chunk_markdown("") == [] and chunk_markdown(" \n\n\t") == []


def test_heading_paths_and_code_fences() -> None:
    markdown = "# Guide\n\nIntro.\n\n## Install\n\n```\n# comment, not a heading\n```\n\n### Linux\n\nUse apt.\n\n## Use\n\nRun it."
    chunks = check_guarantees(markdown, ChunkingConfig(512, 0))
    by_text = {c.text.split("\n")[0]: c.heading_path for c in chunks}
    assert by_text["# Guide"] == ("Guide",)
    assert by_text["## Install"] == ("Guide", "Install")
    assert by_text["### Linux"] == ("Guide", "Install", "Linux")
    assert by_text["## Use"] == ("Guide", "Use")
    assert all("# comment" not in path for c in chunks for path in c.heading_path)


def test_overlap_repeats_the_tail_within_bounds() -> None:
    markdown = " ".join(f"Sentence number {i} is here." for i in range(400))
    chunks = check_guarantees(markdown, ChunkingConfig(64, 16))
    overlaps = [a.char_end - b.char_start for a, b in zip(chunks, chunks[1:])]
    assert all(o > 0 for o in overlaps)
    for a, b in zip(chunks, chunks[1:]):
        assert count_tokens(markdown[b.char_start:a.char_end]) <= 16


def test_pages_follow_char_offsets() -> None:
    page_texts = [f"Page {p} " + "words " * 200 for p in (1, 2, 3)]
    markdown, spans, offset = "", [], 0
    for p, text in enumerate(page_texts, start=1):
        if markdown:
            markdown += "\n\n"
            offset += 2
        markdown += text
        spans.append(PageSpan(p, offset, offset + len(text)))
        offset += len(text)
    chunks = check_guarantees(markdown, ChunkingConfig(100, 0), spans)
    assert chunks[0].pages == (1,) and chunks[-1].pages == (3,)
    assert any(len(c.pages) == 2 for c in chunks) or {p for c in chunks for p in c.pages} == {1, 2, 3}


def test_edit_inside_one_paragraph_keeps_other_chunks() -> None:
    paras = [" ".join(f"Paragraph {p} sentence {s}." for s in range(60)) for p in range(4)]
    before = chunk_markdown("\n\n".join(paras), config=ChunkingConfig(64, 0))
    paras[1] = paras[1].replace("sentence 3.", "sentence three, now longer than before.")
    after = chunk_markdown("\n\n".join(paras), config=ChunkingConfig(64, 0))
    changed = {c.text for c in after} - {c.text for c in before}
    assert changed and all(c.startswith("Paragraph 1") for c in changed)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        ChunkingConfig(100, 100)
    with pytest.raises(ValueError):
        ChunkingConfig(9000, 0)
