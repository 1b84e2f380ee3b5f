"""Type detection from bytes and local parsing of every supported format and bad input."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import zipfile
from pathlib import Path

import pytest
from fpdf import FPDF

from ingestflow.errors import PermanentError
from ingestflow.services.base import Parser
from ingestflow.services.detect import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    SUPPORTED_MIME_TYPES,
    TEXT,
    decode_text,
    detect_mime,
)
from ingestflow.services.local_parser import (
    DOCX_MAX_PARAGRAPHS,
    DOCX_MAX_TAGS,
    DOCX_MAX_UNPACKED_BYTES,
    LocalParser,
    estimate_pages,
    parse_local,
)
from support import ROOT, SAMPLES


def _load_sample_script():
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "scripts" / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _load_sample_script()
FACTS = {
    "handbook.pdf": [fact for _, fact in SCRIPT.PDF_PAGES],
    "recipes.docx": SCRIPT.DOCX_FACTS,
    "garden.html": SCRIPT.HTML_FACTS,
    "release-notes.md": SCRIPT.MARKDOWN_FACTS,
    "notes.txt": SCRIPT.TEXT_FACTS,
}
KINDS = {"handbook.pdf": PDF, "recipes.docx": DOCX, "garden.html": HTML, "release-notes.md": MARKDOWN,
         "notes.txt": TEXT}
# Names that lie about the content: detection must ignore them.
LYING_NAMES = {"handbook.pdf": "photo.png", "recipes.docx": "notes.txt", "garden.html": "report.pdf",
               "release-notes.md": "page.html", "notes.txt": "letter.docx"}


def flat(text: str) -> str:
    """Whitespace collapsed: PDF text breaks lines where the page did."""
    return " ".join(text.split())


def pdf_bytes(pages: list[str], *, password: str | None = None, draw_only: bool = False) -> bytes:
    pdf = FPDF()
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    for text in pages:
        pdf.add_page()
        if draw_only:
            pdf.rect(20, 20, 100, 50, style="DF")
        elif text:
            pdf.set_font("Helvetica", size=12)
            pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def zip_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buf.getvalue()


def failure(data: bytes, mime: str | None = None) -> PermanentError:
    """The PermanentError that detecting (mime None) or parsing the bytes raises."""
    with pytest.raises(PermanentError) as exc:
        parse_local(data, mime) if mime is not None else detect_mime(data)
    assert "Traceback" not in exc.value.message and "File \"" not in exc.value.message
    return exc.value


# -- the sample corpus ---------------------------------------------------------------------


def test_samples_are_exactly_what_the_script_makes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SCRIPT, "OUT", tmp_path)
    SCRIPT.main()
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted([*FACTS, ".README.md"])
    for name in made:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), f"re-run make_samples: {name}"
    readme = (SAMPLES / ".README.md").read_text()
    for facts in FACTS.values():
        assert all(fact in readme for fact in facts)


@pytest.mark.parametrize("name", sorted(FACTS))
def test_each_sample_is_detected_and_parsed_with_its_facts(name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    assert detect_mime(data) == KINDS[name]
    parsed = parse_local(data, KINDS[name])
    assert parsed.parser == "local" and parsed.usage_pages == 0
    assert 2 <= len(FACTS[name]) <= 5
    for fact in FACTS[name]:
        assert fact in flat(parsed.markdown), (name, fact)
    others = [fact for other, facts in FACTS.items() if other != name for fact in facts]
    assert not any(fact in flat(parsed.markdown) for fact in others), "facts are unique to one file"


@pytest.mark.parametrize("name", sorted(FACTS))
def test_the_parser_detects_from_bytes_whatever_the_file_name(name: str) -> None:
    parser = LocalParser()
    assert isinstance(parser, Parser) and parser.name == "local"
    parsed = asyncio.run(parser.parse((SAMPLES / name).read_bytes(), "", LYING_NAMES[name]))
    assert FACTS[name][0] in flat(parsed.markdown)
    assert bool(parsed.pages) == (name == "handbook.pdf")


def test_detection_edge_cases_from_bytes() -> None:
    assert detect_mime(b"\xef\xbb\xbf  \n<!DOCTYPE html><html><body>x</body></html>") == HTML
    assert detect_mime(b"<?xml version='1.0'?>\n<html xmlns='http://www.w3.org/1999/xhtml'></html>") == HTML
    assert detect_mime(b"<!-- saved page -->\n<body><p>hi</p></body>") == HTML
    assert detect_mime("Plain words.\nNothing else.".encode("utf-16")) == TEXT
    assert detect_mime("# Título\n\nTexto en UTF-16.".encode("utf-16")) == MARKDOWN
    assert detect_mime(b"Intro\n\n- one\n- two\n") == MARKDOWN
    assert detect_mime(b"See [the docs](https://example.com) for more.") == MARKDOWN
    assert detect_mime(b"Dear team,\nthe build is green again.\nThanks!") == TEXT
    # Text that happens to start like a binary magic number is still text.
    assert detect_mime(b"MZ Logistics quarterly report: deliveries are up.") == TEXT
    assert detect_mime(b"BMX race results for Sunday.") == TEXT
    assert detect_mime(b"junk before the header\n%PDF-1.7\n...") == PDF
    assert set(SUPPORTED_MIME_TYPES) == {PDF, DOCX, HTML, MARKDOWN, TEXT}


def test_structure_is_kept() -> None:
    docx_md = parse_local((SAMPLES / "recipes.docx").read_bytes(), DOCX).markdown
    assert docx_md.startswith("# Kitchen Notebook\n\n# Sourdough\n\n")
    assert "## Ingredients\n\n| Ingredient | Amount |\n| --- | --- |\n| Rye flour | 500 g |\n| Sea salt | 12 g |" in docx_md
    assert "\n- Feed the starter" in docx_md
    assert docx_md.index("Rye flour") < docx_md.index("# Preserves"), "the table stays in place"
    html_md = parse_local((SAMPLES / "garden.html").read_bytes(), HTML).markdown
    assert html_md.startswith("# Vegetable garden guide") and "## Tomatoes" in html_md
    assert "- Green waste adds nitrogen." in html_md
    assert "console.log" not in html_md and "font-family" not in html_md and "About" not in html_md
    md = parse_local((SAMPLES / "release-notes.md").read_bytes(), MARKDOWN).markdown
    assert md == (SAMPLES / "release-notes.md").read_text()


def test_latin1_and_windows1252_text_is_decoded() -> None:
    text = "Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade.\n"
    latin1 = text.encode("latin-1")
    assert detect_mime(latin1) == TEXT
    assert decode_text(latin1) == parse_local(latin1, TEXT).markdown == text
    cp1252 = b"# Price list\n\n\x93Quoted\x94 \x80 5 \x96 the chef\x92s choice\n"
    assert detect_mime(cp1252) == MARKDOWN
    assert parse_local(cp1252, MARKDOWN).markdown == (
        "# Price list\n\n\u201cQuoted\u201d \u20ac 5 \u2013 the chef\u2019s choice\n")
    # The 5 bytes Windows-1252 leaves undefined decode (as Latin-1 controls) and are cleaned away.
    assert parse_local(b"A\x81B\x8dC" + b" words" * 100, TEXT).markdown.startswith("ABC words")
    # HTML without a declared charset is decoded the same way (as browsers do).
    assert "Caf\u00e9 cr\u00e8me" in parse_local(b"<html><body><p>" + latin1 + b"</p></body></html>", HTML).markdown


def test_utf8_cut_inside_a_character_stays_utf8() -> None:
    data = "na\u00efve caf\u00e9 r\u00e9sum\u00e9".encode()[:-1]
    assert detect_mime(data) == TEXT
    assert decode_text(data) == "na\u00efve caf\u00e9 r\u00e9sum\ufffd"


def test_no_control_character_survives_parsing_in_any_format() -> None:
    """PostgreSQL refuses NUL in text, and C0/C1 controls are noise in chunks."""
    controls = "".join(chr(c) for c in (*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), *range(0x7f, 0xa0)))
    prose = "Lighthouse keepers trim the wick at dusk. " * 100

    def clean(markdown: str) -> bool:
        return not any(ch in controls for ch in markdown)

    noisy = prose + "\x01\x02\x1b\u0085\u009c" + prose
    assert clean(parse_local(noisy.encode(), TEXT).markdown)
    assert clean(parse_local(("# T\n\n" + noisy).encode("utf-16"), MARKDOWN).markdown)
    assert clean(parse_local(f"<html><body><p>{noisy}</p><p>a&#1;b&#x85;c</p></body></html>".encode(), HTML).markdown)
    pdf = parse_local(pdf_bytes(["hy-\nphenated words across a line break " * 20]), PDF).markdown
    assert clean(pdf)
    assert clean(parse_local((SAMPLES / "recipes.docx").read_bytes(), DOCX).markdown)


def test_text_is_normalised_but_kept() -> None:
    parsed = parse_local(b"\xef\xbb\xbf# Title\r\n\r\nLine one\rLine\x0b two\n", MARKDOWN)
    assert parsed.markdown == "# Title\n\nLine one\nLine two\n" and parsed.pages == ()
    assert parse_local("Grüße\n".encode("utf-16"), TEXT).markdown == "Grüße\n"


def test_docx_numbered_and_nested_lists() -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("Steps to follow:")
    document.add_paragraph("Preheat the oven", style="List Number")
    document.add_paragraph("Grease the tin", style="List Bullet 2")
    buf = io.BytesIO()
    document.save(buf)
    markdown = parse_local(buf.getvalue(), DOCX).markdown
    assert markdown == "Steps to follow:\n\n- Preheat the oven\n\n  - Grease the tin"


def test_html_charset_and_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    latin1 = '<html><head><meta charset="iso-8859-1"></head><body><p>Crème brûlée café</p></body></html>'
    assert "Crème brûlée café" in parse_local(latin1.encode("latin-1"), HTML).markdown
    legacy = b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252"></head>'
    assert "\u201cquoted\u201d" in parse_local(legacy + b"<body>\x93quoted\x94</body></html>", HTML).markdown

    import html_to_markdown

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("converter bug")

    monkeypatch.setattr(html_to_markdown, "convert", broken)
    text = parse_local((SAMPLES / "garden.html").read_bytes(), HTML).markdown
    assert "Tomatoes need at least six hours of direct sunlight" in text
    assert "console.log" not in text and "About" not in text


# -- PDF pages -----------------------------------------------------------------------------


def test_pdf_pages_map_each_fact_to_its_page() -> None:
    data = (SAMPLES / "handbook.pdf").read_bytes()
    parsed = parse_local(data, PDF)
    assert [p.page for p in parsed.pages] == [1, 2, 3]
    assert parsed.pages[0].start == 0 and parsed.pages[-1].end == len(parsed.markdown)
    for (page, (title, fact)), span in zip(enumerate(SCRIPT.PDF_PAGES, start=1), parsed.pages):
        text = flat(parsed.markdown[span.start:span.end])
        assert text.startswith(title) and fact in text, page
    for before, after in zip(parsed.pages, parsed.pages[1:]):
        assert parsed.markdown[before.end:after.start] == "\n\n"
    assert "The aurora borealis is caused by charged solar particles" in flat(
        parsed.markdown[parsed.pages[1].start:parsed.pages[1].end])
    assert estimate_pages(data, PDF) == 3


def test_blank_pages_keep_true_page_numbers() -> None:
    parsed = parse_local(pdf_bytes(["first page words", "", "third page words"]), PDF)
    assert [(p.page, parsed.markdown[p.start:p.end]) for p in parsed.pages] == [
        (1, "first page words"), (3, "third page words")]


def test_concurrent_pdf_parses_are_serialised_and_correct() -> None:
    data = pdf_bytes([f"Page {n} talks about topic number {n}." for n in range(1, 21)])

    async def many() -> list:
        parser = LocalParser()
        return await asyncio.gather(*(parser.parse(data, PDF, "x.pdf") for _ in range(8)))

    results = asyncio.run(many())
    assert all(r == results[0] for r in results)
    assert [p.page for p in results[0].pages] == list(range(1, 21))
    span = results[0].pages[16]
    assert results[0].markdown[span.start:span.end] == "Page 17 talks about topic number 17."


# -- bad input: each kind has its own code and a sentence a person understands -----------


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "empty_document", "empty"),
        (b"   \n\t \r\n", "empty_document", "empty"),
        (b"\xef\xbb\xbf \n ", "empty_document", "empty"),
        (b"\xef\xbb\xbf", "empty_document", "empty"),
        (b"\xff\xfe", "empty_document", "empty"),
        (b"\xfe\xff", "empty_document", "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "unsupported_type", "PNG image"),
        (b"\xff\xd8\xff\xe0" + bytes(100), "unsupported_type", "JPEG image"),
        (b"\x7fELF" + bytes(200), "unsupported_type", "executable"),
        (b"MZ\x90\x00" + bytes(200), "unsupported_type", "Windows executable"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(50), "unsupported_type", "WebP image"),
        (bytes(range(256)) * 8, "unsupported_type", "binary data"),
        (b"plain words\n" * 2000 + b"\x00", "unsupported_type", "NUL bytes"),
        (("plain words\n" * 2000 + "\x00").encode("utf-16"), "unsupported_type", "NUL characters"),
        (b"words\x01\x02\x03\x04" * 10, "unsupported_type", "control characters"),
        ("\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440".encode("cp1251") * 10, "unsupported_type",
         "encoding other than UTF-8, UTF-16 or Latin-1/Windows-1252"),
        (b"{\\rtf1\\ansi Hello}", "unsupported_type", "RTF document"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "unsupported_type", "SVG"),
        (zip_bytes({"data.csv": "a,b\n"}), "unsupported_type", "ZIP archive"),
        (zip_bytes({"xl/workbook.xml": "<workbook/>"}), "unsupported_type", "Excel workbook"),
        (b"PK\x03\x04" + b"\x8f garbage that is not a zip archive " * 20, "corrupt_file", "damaged"),
    ],
)
def test_bad_bytes_have_their_own_code(data: bytes, code: str, words: str) -> None:
    error = failure(data)
    assert error.code == code and words in error.message, error.message
    if code == "unsupported_type":
        assert "supported: PDF, DOCX, HTML, Markdown and plain text" in error.message
    # The parser gives the same answer when it has to detect the type itself.
    assert failure(data, "").code == code


def docx_with(body: bytes = b"", **parts: bytes) -> bytes:
    """A real DOCX made by python-docx, with ``body`` put into word/document.xml's body and
    other entries (name with "/" as "__") replaced or added."""
    import docx

    buf = io.BytesIO()
    docx.Document().save(buf)
    source = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    xml = source.read("word/document.xml")
    start = xml.index(b"<w:body>") + len(b"<w:body>")
    entries = {i.filename: source.read(i.filename) for i in source.infolist()}
    entries["word/document.xml"] = xml[:start] + body + xml[start:]
    entries.update({name.replace("__", "/"): content for name, content in parts.items()})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


def with_declared_size(data: bytes, name: str, size: int) -> bytes:
    """The zip with the size of ``name`` rewritten in its local and central headers."""
    out = bytearray(data)
    for signature, name_len_at, size_at, header in ((b"PK\x03\x04", 26, 22, 30), (b"PK\x01\x02", 28, 24, 46)):
        at = out.find(signature)
        while at >= 0:
            name_len = int.from_bytes(out[at + name_len_at:at + name_len_at + 2], "little")
            if out[at + header:at + header + name_len] == name.encode():
                out[at + size_at:at + size_at + 4] = size.to_bytes(4, "little")
            at = out.find(signature, at + 4)
    return bytes(out)


def test_docx_bombs_are_refused_with_a_reason() -> None:
    """A 40 KB file with a million empty paragraphs used to take half a minute and most of a
    gigabyte; it is refused on counting, before python-docx builds anything."""
    bomb = docx_with(b"<w:p/>" * 1_000_000)
    assert len(bomb) < 100_000
    error = failure(bomb, DOCX)
    assert error.code == "too_complex", error.message
    assert f"more than {DOCX_MAX_PARAGRAPHS:,} paragraphs" in error.message and "Split it" in error.message
    runs = docx_with(b"<w:p>" + b"<w:r/>" * DOCX_MAX_TAGS + b"</w:p>")
    error = failure(runs, DOCX)
    assert error.code == "too_complex" and f"more than {DOCX_MAX_TAGS:,} XML tags" in error.message
    big = docx_with(word__media__filler_bin=b"\x00" * (DOCX_MAX_UNPACKED_BYTES + 1))
    error = failure(big, DOCX)
    assert error.code == "too_large" and "unpacks to more than 64 MiB" in error.message
    # Right at the limits a document is still read.
    at_limit = docx_with(b"<w:p><w:r><w:t>kept</w:t></w:r></w:p>" * (DOCX_MAX_PARAGRAPHS - 1))
    assert parse_local(at_limit, DOCX).markdown.startswith("kept\n\nkept")


def test_docx_reading_has_a_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """For what counting cannot foresee; the budget is set below zero to reach it at once."""
    from ingestflow.services import local_parser as parsing

    monkeypatch.setattr(parsing, "DOCX_MAX_SECONDS", -1.0)
    error = failure((SAMPLES / "recipes.docx").read_bytes(), DOCX)
    assert error.code == "too_complex" and "took longer than -1 seconds" in error.message


def test_docx_whose_declared_sizes_lie() -> None:
    bomb = docx_with(b"<w:p/>" * 1_000_000)
    # Declared small: the archive stops at the declared size and the checksum gives it away.
    error = failure(with_declared_size(bomb, "word/document.xml", 1000), DOCX)
    assert error.code == "corrupt_file" and "Bad CRC-32 for file 'word/document.xml'" in error.message
    # Declared huge: refused on the declaration, before anything is unpacked.
    error = failure(with_declared_size(docx_with(b"<w:p/>"), "word/document.xml", 2**32 - 1), DOCX)
    assert error.code == "too_large", error.message


def test_corrupt_docx() -> None:
    good = (SAMPLES / "recipes.docx").read_bytes()
    for data in (
        b"PK\x03\x04" + b"\x8f garbage " * 50,  # a zip header and nothing after it
        good[: len(good) // 2],  # truncated: the central directory is gone
        zip_bytes({"word/document.xml": "<w:document/>"}),  # no [Content_Types].xml, no rels
    ):
        error = failure(data, DOCX)
        assert error.code == "corrupt_file" and error.message.startswith("The DOCX file could not be read"), error.message


def test_encrypted_pdf() -> None:
    error = failure(pdf_bytes(["secret plans"], password="hunter2"), PDF)
    assert error.code == "encrypted_pdf" and "password-protected" in error.message


def test_corrupt_and_truncated_pdf() -> None:
    good = pdf_bytes(["some text worth reading"])
    for data in (good[:300], b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\ngarbage", b"%PDF-" + bytes(range(256))):
        assert detect_mime(data) == PDF
        error = failure(data, PDF)
        assert error.code == "corrupt_file" and error.message.startswith("The PDF could not be read: ")
        assert "damaged or truncated" in error.message, error.message


def test_pdf_without_text_layer() -> None:
    error = failure(pdf_bytes(["", ""], draw_only=True), PDF)
    assert error.code == "empty_document" and "no extractable text" in error.message and "scanned" in error.message


def test_documents_without_text_and_unknown_types() -> None:
    assert failure(b"<html><head><script>var x = 1;</script></head><body>  </body></html>", HTML).code == (
        "empty_document")
    import docx

    buf = io.BytesIO()
    docx.Document().save(buf)
    assert failure(buf.getvalue(), DOCX).code == "empty_document"
    error = failure(b"Some text", "image/png")
    assert error.code == "unsupported_type" and "'image/png'" in error.message
