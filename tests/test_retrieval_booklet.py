"""The retrieval benchmark's generated booklet (bench/retrieval_data/booklet.py): long
enough, its questions as promised, and every recorded answer page really holds the fact
that answers, as the project's own PDF parser reads it."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

from ingestflow.services.local_parser import parse_local
from support import ROOT


@pytest.fixture(scope="module")
def generator():
    path = ROOT / "bench" / "retrieval_data" / "booklet.py"
    spec = importlib.util.spec_from_file_location("booklet", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["booklet"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    yield module
    del sys.modules["booklet"]


@pytest.fixture(scope="module")
def made(generator, tmp_path_factory):
    return generator.build(tmp_path_factory.mktemp("booklet") / "eoc.pdf")


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_booklet_has_100_pages_and_its_answer_pages_hold_the_answers(generator, made) -> None:
    parsed = parse_local(made.path.read_bytes(), "")
    pages = {span.page: flat(parsed.markdown[span.start:span.end]) for span in parsed.pages}
    assert made.pages >= 100 and len(pages) == made.pages

    kinds = Counter(q.kind for q in made.questions)
    assert {kind: kinds[kind] for kind in generator.KINDS} == dict.fromkeys(generator.KINDS, 9)
    assert kinds["no_answer"] >= 15 and sum(kinds.values()) == 45 + kinds["no_answer"]
    assert len({q.id for q in made.questions}) == len(made.questions)

    for q in made.questions:
        if q.kind == "no_answer":
            assert not q.facts and not made.answer_pages(q)
            continue
        assert made.answer_pages(q), q.id
        for fact in q.facts:
            texts = made.fact_texts[fact]
            assert texts and made.fact_pages[fact], fact
            for page in made.fact_pages[fact]:
                for text in texts:
                    assert text in pages[page], f"{q.id}: {text!r} is not on page {page}"


def test_the_booklet_is_the_same_every_time(generator, made, tmp_path: Path) -> None:
    """build() itself refuses an amount ($, %) written outside a table cell and an asked-about
    identifier printed more than once."""
    again = generator.build(tmp_path / "again.pdf")
    assert again.path.read_bytes() == made.path.read_bytes()
    assert again.fact_pages == made.fact_pages
