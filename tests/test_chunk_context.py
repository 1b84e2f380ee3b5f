"""Chunks that carry their context, through the real pipeline and database: no stored chunk
is only a heading, whatever the format and parser; what is embedded and keyword-indexed
begins with the document's title and heading path; a corpus chunked by another rule or
size is said to be, and `reembed` re-chunks it with an estimate."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any

import docx
import numpy as np
import pytest
from fpdf import FPDF
from pydantic import SecretStr

from ingestflow.catalogue import EMBEDDING_MODELS, MOCK_MODEL
from ingestflow.config import ServiceMode, Settings
from ingestflow.pipeline.chunking import ChunkingConfig, chunk_input, chunk_markdown, context_line, document_title
from ingestflow.services.mock import HashingEmbedder
from ingestflow.testing.fake_llamaparse import FakeLlamaParse
from support import SAMPLES, find, ingest, run_cli, sql

KEY = "llx-test-key"
HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t].*)?$")

MARKDOWN = """# Tea brewing guide

## Green tea

Brew green tea at 80 degrees for two minutes; boiling water makes it bitter.

## Black tea
### Assam

Assam wants fully boiling water and four minutes.

## Storage
"""


def html_page() -> bytes:
    return (b"<html><head><title>Volcano facts</title></head><body><h1>Volcanoes</h1>"
            b"<h2>Shield volcanoes</h2><p>Mauna Loa is a shield volcano built by fluid basalt flows.</p>"
            b"<h2>Stratovolcanoes</h2><h3>Famous ones</h3><p>Mount Fuji is a stratovolcano.</p></body></html>")


def docx_file() -> bytes:
    d = docx.Document()
    d.add_heading("Kitchen Notebook", level=0)
    d.add_heading("Sourdough", level=1)
    d.add_paragraph("Feed the starter twice a day with rye flour.")
    d.add_heading("Preserves", level=1)
    d.add_heading("Jams", level=2)
    d.add_paragraph("Plum jam sets at 105 degrees.")
    d.add_heading("Appendix", level=1)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def pdf_file() -> bytes:
    pdf = FPDF()
    pdf.set_title("Coverage booklet")
    for title, text in (("Ambulance services", "The copay is $180 per one-way trip."),
                        ("Hearing aids", "Two hearing aids every three years are covered.")):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.cell(0, 12, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def files(folder: Path) -> list[Path]:
    """One document of every format, each with headings that have nothing under them."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {"tea.md": MARKDOWN.encode(), "volcanoes.html": html_page(), "kitchen.docx": docx_file(),
            "booklet.pdf": pdf_file(), "plain.txt": b"Tea notes\n\nKeep the tin closed and away from light.\n"}
    for name, data in made.items():
        (folder / name).write_bytes(data)
    return [folder / n for n in made] + [SAMPLES / n for n in sorted(p.name for p in SAMPLES.iterdir())
                                         if not n.endswith(".md") or n == "release-notes.md"]


def heading_only(text: str) -> bool:
    return all(HEADING.match(line) for line in text.splitlines() if line.strip())


def stored_chunks(s: Settings) -> list[tuple[str, str, list[str], str]]:
    return sql(s, "SELECT d.source_name, c.text, c.metadata -> 'heading_path', d.parser FROM chunks c"
                  " JOIN documents d ON d.id = c.document_id WHERE d.is_current ORDER BY d.source_name, c.ordinal")


@pytest.mark.parametrize("parser", ["local", "llamaparse"])
def test_no_stored_chunk_is_only_a_heading_in_any_format(settings: Settings, tmp_path: Path, parser: str) -> None:
    paths = files(tmp_path / "docs")
    if parser == "llamaparse":  # the fake reads PDFs and text, not DOCX (a zip) as LlamaParse does
        paths = [p for p in paths if p.suffix != ".docx"]
    with FakeLlamaParse(api_key=KEY) as fake:
        s = settings if parser == "local" else settings.model_copy(update={
            "parser_mode": ServiceMode.REAL, "parser_provider": "llamaparse",
            "llamaparse_api_key": SecretStr(KEY), "llamaparse_base_url": fake.url})
        ingest(s, paths)
    assert set(sql(s, "SELECT stage, parser FROM documents")) == {("complete", parser)}
    rows = stored_chunks(s)
    assert {Path(name).suffix for name, *_ in rows} == {p.suffix for p in paths}
    assert [text for _, text, _, _ in rows if heading_only(text)] == []
    texts = {Path(name).name: [t for n, t, _, _ in rows if n == name] for name, *_ in rows}
    if parser == "local":  # the reported cases: each heading travels with the text under it
        assert texts["kitchen.docx"][0].startswith("# Kitchen Notebook\n\n# Sourdough\n\nFeed the starter")
        assert texts["volcanoes.html"][0].startswith("# Volcanoes\n\n## Shield volcanoes\n\nMauna Loa")
        assert "## Storage" in texts["tea.md"][-1]  # a last bare heading joins the section before
    # (the fake LlamaParse heads its Markdown with a heading of its own: it joins them)
    assert "# Tea brewing guide\n\n## Green tea\n\nBrew green tea" in texts["tea.md"][0]


def test_inputs_begin_with_the_title_and_heading_path(settings: Settings, tmp_path: Path) -> None:
    paths = files(tmp_path / "docs")
    ingest(settings, paths)
    titles = dict(sql(settings, "SELECT source_name, title FROM documents"))
    named = {Path(k).name: v for k, v in titles.items()}
    assert named["kitchen.docx"] == "Kitchen Notebook"  # the first H1
    assert named["booklet.pdf"] == "Coverage booklet"  # no headings: the PDF's metadata
    assert named["volcanoes.html"] == "Volcanoes"  # the first H1 before the <title>
    assert named["plain.txt"] == "plain"  # neither: the file name
    signature = sql(settings, "SELECT DISTINCT chunking FROM documents")
    mock = EMBEDDING_MODELS[MOCK_MODEL]  # unset, the model's own chunk size
    assert signature == [({"rule": 2, "max_tokens": mock.chunk_tokens, "overlap_tokens": mock.chunk_overlap_tokens},)]

    # Each vector is the mock embedding of the input: context line, then the passage.
    rows = sql(settings, "SELECT d.title, c.text, c.metadata -> 'heading_path', c.token_count, e.embedding::text"
                         " FROM chunks c JOIN documents d ON d.id = c.document_id"
                         " JOIN embeddings e ON e.chunk_id = c.id WHERE d.source_name LIKE %s", ("%volcanoes.html",))
    embedder = HashingEmbedder(1536)
    stored_inputs = []
    for title, text, path, tokens, vector in rows:
        line = context_line(title, tuple(path), mock.chunk_tokens)
        assert line.startswith("Volcanoes > ")  # the title is said once, before the path
        assert not text.startswith(line) and title in line
        stored_inputs.append(chunk_input(line, text))
        stored = np.array(vector.strip("[]").split(","), dtype=np.float32)
        of_input, of_text = asyncio.run(embedder.embed([stored_inputs[-1], text])).vectors
        assert float(stored @ of_input) > 0.999 > float(stored @ of_text)
    assert any("Stratovolcanoes > Famous ones" in i for i in stored_inputs)

    # The PDF's second page says nothing of the booklet: its input does, and so does its
    # keyword index, through the title.
    hits = find(settings, "coverage booklet hearing", mode="keyword", k=3).hits
    assert hits and "hearing aids" in hits[0].text.lower() and "booklet" not in hits[0].text.lower()


def test_the_context_line_fits_the_chunk_budget() -> None:
    long_title = "Evidence of Coverage " * 30
    path = ("Chapter 4: Medical Benefits Chart", "Section 2.1", "Ambulance services")
    line = context_line(long_title, path, 127)
    assert len(line) < len(long_title)
    text = "\n\n".join(f"Sentence {i} of the ambulance rules, which apply to one-way trips." for i in range(200))
    config = ChunkingConfig(127, 16)
    for chunk in chunk_markdown("# Ambulance services\n\n" + text, config=config, title=long_title):
        assert chunk.token_count <= 127  # the context line counts toward the model's limit
    short = context_line("Evidence of Coverage", path, 127)
    assert short == "Evidence of Coverage > Chapter 4: Medical Benefits Chart > Section 2.1 > Ambulance services"
    assert context_line("Guide", ("Guide", "Install"), 127) == "Guide > Install"  # the title once
    assert context_line("Guide", ("Install",), 16) == ""  # too small a chunk to carry one
    assert document_title("no heading here", None, "docs/tea_guide-v2.md") == "tea guide-v2"


def stale_note(notes: list[str]) -> bool:
    return any("chunked by an older rule" in n and "ingestflow reembed" in n for n in notes)


def call(s: Settings, fn: Any, *args: Any, **kwargs: Any) -> Any:
    from ingestflow.runtime import open_runtime

    async def main() -> Any:
        async with open_runtime(s) as rt:
            return await fn(rt, *args, **kwargs)

    return asyncio.run(main())


def test_a_corpus_chunked_otherwise_is_said_to_be_and_reembed_rechunks_it(settings: Settings,
                                                                           tmp_path: Path) -> None:
    from ingestflow.operations.spaces import report, start_reembed

    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(3):
        (docs / f"guide{n}.md").write_text(f"# Guide {n}\n\n" + "\n\n".join(
            f"## Part {p}\n\nThe glacier number {n} moves {p} metres a year along the fjord." for p in range(12)))
    old = settings.model_copy(update={"chunk_max_tokens": 48, "chunk_overlap_tokens": 0})
    ingest(old, [docs])
    ingest(old, [docs], tenant="other")
    # A document from before chunking was recorded (rule 1), as a migrated corpus holds.
    sql(old, "UPDATE documents SET chunking = NULL WHERE source_name LIKE %s", ("%guide0.md",))
    assert find(old, "glacier fjord").notes and stale_note(find(old, "glacier fjord").notes)

    new = settings.model_copy(update={"chunk_max_tokens": 200, "chunk_overlap_tokens": 20})
    result = find(new, "glacier fjord")
    assert result.hits and stale_note(result.notes)
    status = run_cli(new, "status")
    assert "3 current documents were chunked by an older rule" in status.stdout, status.stdout
    doctor = run_cli(new, "doctor")
    assert "6 of 6 current documents chunked otherwise" in doctor.stdout, doctor.stdout

    before = call(new, report, "default")
    texts = sql(new, "SELECT d.source_name, t.markdown, d.title FROM documents d"
                     " JOIN document_texts t ON t.document_id = d.id WHERE d.tenant = 'default'")
    expected = [c.token_count for name, markdown, _ in texts for c in chunk_markdown(
        markdown, config=ChunkingConfig(200, 20), title=document_title(markdown, None, name))]
    assert before.rechunk is not None
    assert (before.rechunk.documents, before.rechunk.chunks, before.rechunk.tokens) == (3, len(expected),
                                                                                        sum(expected))
    assert before.rechunk.sync_usd == 0  # the mock is free; OpenAI's price is tested with the model change
    shown = run_cli(new, "reembed")
    assert f"re-chunk:      3 documents chunked by another rule or size: {len(expected)} chunks" in shown.stdout

    queued = call(new, start_reembed, "default", batch_api=False)
    assert len(queued) == 3
    versions = sql(new, "SELECT source_name, version, stage, is_current FROM documents ORDER BY 1, 2")
    assert {(v, stage, cur) for _, v, stage, cur in versions} == {(1, "complete", True), (2, "parsed", False)}
    assert find(new, "glacier fjord").hits  # the old chunks answer meanwhile

    async def drain(rt: Any) -> None:
        await rt.drain(queued).run()

    call(new, drain)
    current = sql(new, "SELECT version, chunking, parser FROM documents WHERE is_current AND tenant = 'default'")
    assert current == [(2, {"rule": 2, "max_tokens": 200, "overlap_tokens": 20}, "local")] * 3
    assert sql(new, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
                    " WHERE NOT d.is_current")[0][0] == 0  # the old versions' chunks are gone
    assert sql(new, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
                    " WHERE d.tenant = 'default'")[0][0] == len(expected)
    assert sql(new, "SELECT count(*) FROM events e JOIN documents d ON d.id = e.document_id"
                    " WHERE kind = 'stage_done' AND e.stage = 'parsed' AND d.tenant = 'default'")[0][0] == 3
    after = find(new, "glacier fjord")
    assert after.hits and not stale_note(after.notes)
    assert call(new, report, "default").rechunk is None
    assert call(new, start_reembed, "default", batch_api=False) == []  # nothing left to do

    # The command: the estimate, then the work with a progress bar per stage.
    done = run_cli(new, "reembed", "--tenant", "other", "--yes")
    assert done.returncode == 0, done.stderr
    assert "re-chunk:      3 documents" in done.stdout and "queued 3 documents" in done.stdout
    assert re.search(r"chunk\s.*3/3", done.stdout) and re.search(r"embed\s.*3/3", done.stdout), done.stdout
    assert sql(new, "SELECT DISTINCT version FROM documents WHERE tenant = 'other' AND is_current") == [(2,)]
