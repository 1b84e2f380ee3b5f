"""Document type from the bytes, never from the file name (names lie, bytes do not)."""

from __future__ import annotations

import io
import re
import zipfile

from ingestflow.errors import PermanentError

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
SUPPORTED_MIME_TYPES = (PDF, DOCX, HTML, MARKDOWN, TEXT)
SUPPORTED_NAMES = "PDF, DOCX, HTML, Markdown and plain text"

# Magic numbers of common formats we do not parse, to name them in the error.
_KNOWN_BINARY = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\xd0\xcf\x11\xe0", "a legacy Microsoft Office file (.doc/.xls/.ppt)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "a Windows executable"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg media file"),
    (b"{\\rtf", "an RTF document"),
)
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<!--|<meta|<title|<div|<p[\s>])", re.I)
_MARKDOWN_SIGNALS = re.compile(
    r"^(#{1,6}\s|\s*[-*+]\s|\s*\d+\.\s|```|~~~|>\s|\|.*\|)|\[[^\]]+\]\([^)]+\)|\*\*[^*]+\*\*",
    re.M,
)


def detect_mime(data: bytes) -> str:
    """One of SUPPORTED_MIME_TYPES, or PermanentError naming what the bytes look like."""
    if not data.strip():
        raise PermanentError("empty_document", "The file is empty: there is no text to index.")
    if data.startswith(b"%PDF-") or b"%PDF-" in data[:1024]:
        return PDF
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    for magic, name in _KNOWN_BINARY:
        if data.startswith(magic):
            raise _unsupported(name)
    text = _as_text(data)
    if text is None:
        raise _unsupported("binary data")
    head = text.lstrip("\ufeff")[:2048].encode()
    if _HTML_START.match(head):
        return HTML
    if len(_MARKDOWN_SIGNALS.findall(text[:20000])) >= 1:
        return MARKDOWN
    return TEXT


def decode_text(data: bytes) -> str:
    """Text of a text file: UTF-8 (BOM stripped), or UTF-16 with a BOM."""
    text = _as_text(data)
    if text is None:
        raise PermanentError("corrupt_file", "The file is not valid UTF-8 or UTF-16 text.")
    return text.lstrip("\ufeff")


def _as_text(data: bytes) -> str | None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data[:8192]:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    sample = text[:8192]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f")
    return None if sample and controls / len(sample) > 0.01 else text


def _zip_kind(data: bytes) -> str:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except zipfile.BadZipFile:
        raise PermanentError(
            "corrupt_file", "The file looks like a DOCX/ZIP package but the archive is damaged."
        ) from None
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        raise _unsupported("an Excel workbook (.xlsx)")
    if "ppt/presentation.xml" in names:
        raise _unsupported("a PowerPoint presentation (.pptx)")
    raise _unsupported("a ZIP archive")


def _unsupported(what: str) -> PermanentError:
    return PermanentError(
        "unsupported_type", f"The file looks like {what}, which cannot be indexed; supported: {SUPPORTED_NAMES}."
    )
