"""Type detection from bytes and local parsing of every supported format and bad input."""

from __future__ import annotations

import io
import zipfile

import pytest
from fpdf import FPDF
from support import SAMPLES

from ingestflow.errors import PermanentError
from ingestflow.pipeline.detect import DOCX, HTML, MARKDOWN, PDF, TEXT, detect_mime
from ingestflow.pipeline.parsing import estimate_pages, parse_local

FACTS = {
    "handbook.pdf": ["largest coral reef system", "charged solar particles", "Honey never spoils"],
    "recipes.docx": ["rest for twelve hours", "Sterilise jam jars"],
    "garden.html": ["six hours of direct sunlight", "turned every two weeks"],
    "release-notes.md": ["resumable uploads", "legacy XML export"],
    "notes.txt": ["lighthouse restoration moved to Thursday"],
}
KINDS = {"handbook.pdf": PDF, "recipes.docx": DOCX, "garden.html": HTML, "release-notes.md": MARKDOWN,
         "notes.txt": TEXT}


def pdf_bytes(pages: list[str], *, password: str | None = None, draw_only: bool = False) -> bytes:
    pdf = FPDF()
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    for text in pages:
        pdf.add_page()
        if draw_only:
            pdf.rect(20, 20, 100, 50)
        else:
            pdf.set_font("Helvetica", size=12)
            pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


@pytest.mark.parametrize("name", sorted(FACTS))
def test_samples_detect_and_parse_with_their_facts(name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    assert detect_mime(data) == KINDS[name]
    parsed = parse_local(data, KINDS[name])
    assert parsed.parser == "local"
    for fact in FACTS[name]:
        assert fact in " ".join(parsed.markdown.split()), (name, fact)


def test_detection_ignores_misleading_names() -> None:
    # the bytes of a DOCX sent as ".txt", and HTML sent as ".pdf": only bytes count
    assert detect_mime((SAMPLES / "recipes.docx").read_bytes()) == DOCX
    assert detect_mime(b"\xef\xbb\xbf<!DOCTYPE html><html><body>x</body></html>") == HTML
    assert detect_mime("Plain words.\nNothing else.".encode("utf-16")) == TEXT


def test_structure_is_kept() -> None:
    docx_md = parse_local((SAMPLES / "recipes.docx").read_bytes(), DOCX).markdown
    assert "# Sourdough" in docx_md and "| Rye flour | 500 g |" in docx_md and "- Feed the starter" in docx_md
    html_md = parse_local((SAMPLES / "garden.html").read_bytes(), HTML).markdown
    assert "## Tomatoes" in html_md and "console.log" not in html_md and "About" not in html_md


def test_pdf_pages_map_text_to_page_numbers() -> None:
    parsed = parse_local((SAMPLES / "handbook.pdf").read_bytes(), PDF)
    assert [p.page for p in parsed.pages] == [1, 2, 3]
    for page, fact in [(1, "coral reef"), (2, "aurora borealis"), (3, "Honey never spoils")]:
        span = parsed.pages[page - 1]
        assert fact in parsed.markdown[span.start:span.end]
    assert estimate_pages((SAMPLES / "handbook.pdf").read_bytes(), PDF) == 3


def test_blank_pages_keep_true_page_numbers() -> None:
    data = pdf_bytes(["first page words", "", "third page words"])
    parsed = parse_local(data, PDF)
    assert [(p.page, parsed.markdown[p.start:p.end]) for p in parsed.pages] == [
        (1, "first page words"), (3, "third page words")]


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "empty_document", "empty"),
        (b"   \n\t ", "empty_document", "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "unsupported_type", "PNG image"),
        (b"\x7fELF" + bytes(200), "unsupported_type", "executable"),
        (bytes(range(256)) * 8, "unsupported_type", "binary data"),
    ],
)
def test_bad_bytes_have_their_own_code(data: bytes, code: str, words: str) -> None:
    with pytest.raises(PermanentError) as exc:
        detect_mime(data)
    assert exc.value.code == code and words in exc.value.message


def test_plain_zip_and_damaged_docx() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.csv", "a,b\n")
    with pytest.raises(PermanentError, match="ZIP archive") as exc:
        detect_mime(buf.getvalue())
    assert exc.value.code == "unsupported_type"
    truncated = (SAMPLES / "recipes.docx").read_bytes()[:2000]
    with pytest.raises(PermanentError) as exc:
        parse_local(truncated, detect_mime(truncated) if truncated[:2] != b"PK" else DOCX)
    assert exc.value.code == "corrupt_file"


def test_encrypted_pdf() -> None:
    with pytest.raises(PermanentError) as exc:
        parse_local(pdf_bytes(["secret"], password="hunter2"), PDF)
    assert exc.value.code == "encrypted_pdf" and "password" in exc.value.message


def test_corrupt_and_truncated_pdf() -> None:
    good = pdf_bytes(["some text"])
    for data in (good[:300], b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\ngarbage"):
        with pytest.raises(PermanentError) as exc:
            parse_local(data, PDF)
        assert exc.value.code == "corrupt_file" and "PDF could not be read" in exc.value.message
        assert "Traceback" not in exc.value.message


def test_pdf_without_text_layer() -> None:
    with pytest.raises(PermanentError) as exc:
        parse_local(pdf_bytes(["", ""], draw_only=True), PDF)
    assert exc.value.code == "empty_document" and "scanned" in exc.value.message
