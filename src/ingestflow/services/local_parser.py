"""The local parser: PDF, DOCX, HTML, Markdown and plain text to Markdown, offline.

Libraries were chosen by measurement on this kind of machine: pypdfium2 extracts the text
of a 232-page PDF in 0.4 s (pypdf 2.9 s, pdfminer 13.9 s); python-docx reads headings,
lists and tables in document order; html-to-markdown converts HTML in native code.
Every way a file can be bad ends in a PermanentError with a code and a sentence a person
understands; no stack trace reaches the document's error message.
"""

from __future__ import annotations

import asyncio
import html
import io
import re
import threading
import time
import zipfile
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

from ingestflow.errors import PermanentError

if TYPE_CHECKING:
    import pypdfium2 as pdfium
from ingestflow.services.base import PageSpan, ParsedDocument, clean_text
from ingestflow.services.detect import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    SUPPORTED_NAMES,
    TEXT,
    decode_text,
    detect_mime,
)

# PDFium is not thread-safe, not even across different documents: one call at a time.
_PDFIUM_LOCK = threading.Lock()
_CHARS_PER_PAGE = 3000  # page estimate for formats without pages
INLINE_TEXT_BYTES = 64 * 1024  # Markdown or text up to this is cleaned without a thread (~0.1 ms)
# A DOCX is a zip: a few KB can unpack to gigabytes or to millions of empty paragraphs,
# which python-docx would hold in memory and walk one by one. Well past real documents:
DOCX_MAX_UNPACKED_BYTES = 64 * 1024 * 1024
DOCX_MAX_PARAGRAPHS = 100_000  # some 2,000 pages
DOCX_MAX_TAGS = 2_000_000
DOCX_MAX_SECONDS = 30.0  # walking the paragraphs, for what counting cannot foresee
_DOCX_READ_BYTES = 1024 * 1024
_DOCX_PARAGRAPH = re.compile(rb"<w:p[\s/>]")


def parse_local(data: bytes, mime: str) -> ParsedDocument:
    """Markdown of ``data``; ``mime`` is the type detected from the bytes ("" detects it)."""
    mime = mime or detect_mime(data)
    title = ""
    if mime == PDF:
        markdown, pages, title = _pdf(data)
        return ParsedDocument(markdown, "local", tuple(pages), usage_pages=0, title=title)
    if mime == DOCX:
        markdown, title = _docx(data)
    elif mime == HTML:
        markdown, title = _html(data)
    elif mime in (MARKDOWN, TEXT):
        markdown = _text(data)
    else:
        raise PermanentError(
            "unsupported_type", f"Documents of type {mime!r} cannot be parsed; supported: {SUPPORTED_NAMES}."
        )
    if not markdown.strip():
        raise PermanentError("empty_document", "The document contains no text to index.")
    return ParsedDocument(markdown, "local", usage_pages=0, title=title)


@cache
def _pdfium() -> ModuleType:
    """pypdfium2, imported on first use: commands that never read a PDF skip its load."""
    import pypdfium2

    return pypdfium2


def estimate_pages(data: bytes, mime: str) -> int:
    """Pages a per-page provider will bill: the real count for PDFs, an estimate otherwise."""
    if mime == PDF:
        pdfium = _pdfium()
        with _PDFIUM_LOCK:
            try:
                pdf = pdfium.PdfDocument(data)
            except pdfium.PdfiumError:
                return 1
            try:
                return max(1, len(pdf))
            finally:
                pdf.close()
    return max(1, len(data) // _CHARS_PER_PAGE)


def warm_up() -> None:
    """Import the format libraries that parsing imports on first use."""
    _pdfium()
    import docx  # noqa: F401
    import html_to_markdown  # noqa: F401
    from selectolax.lexbor import LexborHTMLParser  # noqa: F401


class LocalParser:
    """The free parser; also the mock and the HYBRID fallback for LlamaParse."""

    name = "local"

    async def parse(self, data: bytes, mime: str, filename: str) -> ParsedDocument:
        """``filename`` is ignored on purpose: the type comes from the bytes. Small text is
        cleaned in the event loop: that takes microseconds, less than a thread hand-off
        (1,000 one-paragraph notes spent more in those than in parsing)."""
        if mime in (MARKDOWN, TEXT) and len(data) <= INLINE_TEXT_BYTES:
            return parse_local(data, mime)
        return await asyncio.to_thread(parse_local, data, mime)

    async def aclose(self) -> None:
        """Nothing to release."""

    async def health(self) -> tuple[bool, str]:
        return True, "runs in-process"


# -- plain text and Markdown ------------------------------------------------------------


def _text(data: bytes) -> str:
    """Markdown and plain text are kept as they are: they already are Markdown."""
    return clean_text(decode_text(data))


# -- PDF --------------------------------------------------------------------------------


def _pdf(data: bytes) -> tuple[str, list[PageSpan], str]:
    """Text of every page, pages joined by a blank line; spans say where each page is.
    Pages without text get no span, so the others keep their true page numbers. And the
    title in the PDF's metadata."""
    with _PDFIUM_LOCK:
        pdf = _open_pdf(data)
        try:
            texts = [_pdf_page_text(pdf, index) for index in range(len(pdf))]
            title = clean_text(pdf.get_metadata_value("Title")).strip()
        finally:
            pdf.close()
    parts, spans, offset = [], [], 0
    for number, text in enumerate(texts, start=1):
        if not text:
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        parts.append(text)
        spans.append(PageSpan(number, offset, offset + len(text)))
        offset += len(text)
    if not spans:
        raise PermanentError(
            "empty_document",
            "The PDF has no extractable text (is it a scanned image?); run OCR on it and upload it again.",
        )
    return "".join(parts), spans, title


def _open_pdf(data: bytes) -> pdfium.PdfDocument:
    pdfium = _pdfium()
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium.raw.FPDF_ERR_PASSWORD or "password" in str(exc).lower():
            raise PermanentError(
                "encrypted_pdf",
                "The PDF is password-protected; remove the password (save an unprotected copy) "
                "and upload it again.",
            ) from None
        raise PermanentError("corrupt_file", f"The PDF could not be read: {_pdfium_reason(exc)}") from None


def _pdf_page_text(pdf: pdfium.PdfDocument, index: int) -> str:
    pdfium = _pdfium()
    try:
        page = pdf[index]
    except pdfium.PdfiumError as exc:
        raise PermanentError(
            "corrupt_file", f"The PDF could not be read: page {index + 1} is damaged ({_pdfium_reason(exc)})"
        ) from None
    try:
        textpage = page.get_textpage()
        try:
            return clean_text(textpage.get_text_range()).strip()
        finally:
            textpage.close()
    except pdfium.PdfiumError as exc:
        raise PermanentError(
            "corrupt_file", f"The PDF could not be read: page {index + 1} is damaged ({_pdfium_reason(exc)})"
        ) from None
    finally:
        page.close()


def _pdfium_reason(exc: Exception) -> str:
    """PDFium's own words ("Data format error"), which a person can act on."""
    match = re.search(r"PDFium: ([^)]+)", str(exc))
    reason = match.group(1) if match else str(exc).rstrip(".")
    return f"{reason.lower()}; the file may be damaged or truncated."


# -- DOCX -------------------------------------------------------------------------------


def _docx(data: bytes) -> tuple[str, str]:
    """Headings, paragraphs, lists and tables in document order (tables stay in place),
    and the title in the document's properties."""
    import docx  # python-docx: imported here, only DOCX uploads pay for it
    from docx.enum.style import WD_STYLE_TYPE
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        _check_docx_size(data)
        deadline = time.monotonic() + DOCX_MAX_SECONDS
        document = docx.Document(io.BytesIO(data))
        # python-docx looks a paragraph's style up by scanning every style: once per id here.
        styles = {style.style_id: style.name or "" for style in document.styles}
        default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
        default_style = (default.name or "") if default is not None else ""
        title = clean_text(document.core_properties.title or "").strip()
        blocks = []
        for item in document.iter_inner_content():
            if time.monotonic() > deadline:
                raise _docx_too_complex(f"reading it took longer than {DOCX_MAX_SECONDS:g} seconds")
            if isinstance(item, Paragraph):
                blocks.append(_docx_paragraph(item, styles.get(item._p.style, default_style)))
            elif isinstance(item, Table):
                blocks.append(_docx_table(item))
    except PermanentError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise PermanentError("corrupt_file", f"The DOCX file could not be read: {_short(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - lxml/opc errors: the file is damaged
        raise PermanentError(
            "corrupt_file", f"The DOCX file could not be read: it is damaged ({type(exc).__name__})."
        ) from None
    return clean_text("\n\n".join(b for b in blocks if b.strip())), title


def _check_docx_size(data: bytes) -> None:
    """Refuse a zip bomb before python-docx unpacks it: by the sizes its entries declare,
    and by the paragraphs and tags in its XML (each becomes an object in memory, and
    paragraphs are walked one by one). A declared size cannot understate what is unpacked:
    zipfile stops at it, and the checksum then fails (corrupt_file)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = archive.infolist()
        if sum(info.file_size for info in entries) > DOCX_MAX_UNPACKED_BYTES:
            raise PermanentError(
                "too_large", f"The DOCX file unpacks to more than {DOCX_MAX_UNPACKED_BYTES // 2**20} MiB, "
                "more than this service reads. Split it into smaller documents.")
        paragraphs = tags = 0
        for info in entries:
            if not info.filename.endswith((".xml", ".rels")):
                continue
            with archive.open(info) as member:
                tail = b""
                while chunk := member.read(_DOCX_READ_BYTES):
                    paragraphs += len(_DOCX_PARAGRAPH.findall(tail + chunk))
                    tags += chunk.count(b"<")
                    tail = chunk[-4:]  # a tag cut at the chunk boundary (too short to match alone)
                    if paragraphs > DOCX_MAX_PARAGRAPHS:
                        raise _docx_too_complex(f"it holds more than {DOCX_MAX_PARAGRAPHS:,} paragraphs, "
                                                "far more than a real document")
                    if tags > DOCX_MAX_TAGS:
                        raise _docx_too_complex(f"it holds more than {DOCX_MAX_TAGS:,} XML tags, "
                                                "far more than a real document")


def _docx_too_complex(why: str) -> PermanentError:
    return PermanentError("too_complex", f"The DOCX file is too complex to read: {why}. "
                                         "Split it into smaller documents.")


def _docx_paragraph(paragraph, style: str) -> str:
    text = " ".join(paragraph.text.split())
    if not text:
        return ""
    if style == "Title":
        return f"# {text}"
    heading = re.match(r"Heading (\d)", style)
    if heading:
        return f"{'#' * min(max(int(heading.group(1)), 1), 6)} {text}"
    level = _list_level(paragraph, style)
    if level is not None:
        return f"{'  ' * level}- {text}"
    return text


def _list_level(paragraph, style: str) -> int | None:
    """Nesting level of a list item (a "List ..." style or Word numbering), else None."""
    ppr = paragraph._p.pPr  # python-docx has no public API for Word numbering
    numbering = ppr.numPr if ppr is not None else None
    if numbering is not None and numbering.ilvl is not None and numbering.ilvl.val is not None:
        return min(int(numbering.ilvl.val), 8)
    if style.startswith("List"):
        level = re.search(r"(\d)$", style)  # "List Bullet 2" is the second level
        return int(level.group(1)) - 1 if level else 0
    return 0 if numbering is not None else None


def _docx_table(table) -> str:
    rows = [[_cell(cell.text) for cell in row.cells] for row in table.rows]
    rows = [r for r in rows if any(r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _short(exc: Exception) -> str:
    message = str(exc).strip().strip('"') or type(exc).__name__
    return (message[:200] + "...") if len(message) > 200 else message.rstrip(".") + "."


# -- HTML -------------------------------------------------------------------------------


def _html(data: bytes) -> tuple[str, str]:
    """The page's Markdown and its ``<title>``."""
    text = _decode_html(data)
    title = _HTML_TITLE.search(text)
    return _html_markdown(text), clean_text(html.unescape(" ".join(title.group(1).split()))) if title else ""


_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def _html_markdown(text: str) -> str:
    """Converted in native code; scripts, styles, navigation and forms are not content.
    Should the converter fail, the page's plain text is better than losing the document."""
    import html_to_markdown

    try:
        options = html_to_markdown.ConversionOptions(
            extract_metadata=False,
            skip_images=True,
            preprocessing=html_to_markdown.PreprocessingOptions(
                enabled=True, remove_navigation=True, remove_forms=True
            ),
            exclude_selectors=["script", "style", "noscript", "template", "nav"],
        )
        return clean_text(html_to_markdown.convert(text, options).content).strip()
    except Exception:  # noqa: BLE001 - fall back to plain text rather than lose the document
        return _html_text(text)


def _html_text(text: str) -> str:
    from selectolax.lexbor import LexborHTMLParser  # selectolax >= 1.0 has only lexbor

    tree = LexborHTMLParser(text)
    for node in tree.css("script, style, nav, noscript, template"):
        node.decompose()
    body = tree.body or tree.root
    return clean_text(body.text(separator="\n")).strip() if body is not None else ""


def _decode_html(data: bytes) -> str:
    """A BOM wins, then a ``<meta charset>``; otherwise the decoding of text files (UTF-8,
    else Windows-1252, as browsers do), never failing."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace").lstrip("\ufeff")
    match = re.search(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", data[:4096], re.IGNORECASE)
    if match is None:
        return decode_text(data)  # no BOM here, so it cannot fail
    encoding = match.group(1).decode("ascii")
    if encoding.lower().replace("-", "").replace("_", "") in ("utf16", "utf16le", "utf16be"):
        encoding = "utf-8"  # a UTF-16 page has a BOM; a declaration without one is wrong
    try:
        return data.decode(encoding, errors="replace")
    except LookupError:
        return decode_text(data)
