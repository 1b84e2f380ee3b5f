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
SUPPORTED_NAMES = "PDF, DOCX, HTML, Markdown and plain text (UTF-8, or UTF-16 with a BOM)"

# Magic numbers of common formats we do not parse, to name them in the error. They are only
# consulted for bytes that are not text, so a text file starting with "MZ" stays text.
_KNOWN_BINARY = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"\x00\x00\x01\x00", "an icon file"),
    (b"\xd0\xcf\x11\xe0", "a legacy Microsoft Office file (.doc/.xls/.ppt)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "a Windows executable"),
    (b"\xcf\xfa\xed\xfe", "an executable"),
    (b"\xca\xfe\xba\xbe", "an executable"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg media file"),
    (b"fLaC", "a FLAC audio file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x00asm", "a WebAssembly module"),
)
_RIFF_KINDS = {b"WEBP": "a WebP image", b"WAVE": "a WAV audio file", b"AVI ": "an AVI video"}
_HTML_START = re.compile(
    r"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*"
    r"(<!doctype\s+html|<html|<head|<body|<meta|<title|<div|<p[\s>]|<h[1-6][\s>]|<table|<article)",
    re.IGNORECASE | re.DOTALL,
)
_SVG_START = re.compile(r"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!doctype\s+svg|<svg)", re.IGNORECASE | re.DOTALL)
_MARKDOWN_SIGNALS = re.compile(
    r"^(#{1,6}\s|\s*[-*+]\s|\s*\d+\.\s|```|~~~|>\s|\|.*\|)|\[[^\]]+\]\([^)]+\)|\*\*[^*]+\*\*",
    re.MULTILINE,
)


def detect_mime(data: bytes) -> str:
    """One of SUPPORTED_MIME_TYPES, or PermanentError naming what the bytes look like."""
    if not data.strip():
        raise _empty()
    if b"%PDF-" in data[:1024]:  # the header may follow some junk bytes (readers allow it)
        return PDF
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if data.startswith(b"{\\rtf"):
        raise _unsupported("an RTF document")
    text = _as_text(data)
    if text is None:
        raise _unsupported(_binary_kind(data))
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise _empty()
    head = text[:4096]
    if _HTML_START.match(head):
        return HTML
    if _SVG_START.match(head):
        raise _unsupported("an SVG image")
    if _MARKDOWN_SIGNALS.search(text[:20000]):
        return MARKDOWN
    return TEXT


def decode_text(data: bytes) -> str:
    """Text of a text file: UTF-8 (BOM stripped), or UTF-16 with a BOM. Only decoding is
    checked here: whether the bytes are text at all is detection's job."""
    text = _decode(data)
    if text is None:
        raise PermanentError("corrupt_file", "The file is not valid UTF-8 or UTF-16 text.")
    return text.lstrip("\ufeff")


def _decode(data: bytes) -> str | None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _as_text(data: bytes) -> str | None:
    """The decoded text, or None when the bytes are not (mostly printable) text."""
    if not data.startswith((b"\xff\xfe", b"\xfe\xff")) and b"\x00" in data[:8192]:
        return None  # fail fast on binary before decoding it all
    text = _decode(data)
    if text is None:
        return None
    sample = text[:8192]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f")
    return None if "\x00" in sample or controls > len(sample) * 0.01 else text


def _binary_kind(data: bytes) -> str:
    for magic, name in _KNOWN_BINARY:
        if data.startswith(magic):
            return name
    if data.startswith(b"RIFF") and data[8:12] in _RIFF_KINDS:
        return _RIFF_KINDS[data[8:12]]
    if data[4:8] == b"ftyp":
        return "an MP4/QuickTime video or HEIC image"
    return "binary data (not text in UTF-8 or UTF-16)"


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise PermanentError(
            "corrupt_file", "The file looks like a DOCX/ZIP package but the archive is damaged or truncated."
        ) from None
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        raise _unsupported("an Excel workbook (.xlsx)")
    if "ppt/presentation.xml" in names:
        raise _unsupported("a PowerPoint presentation (.pptx)")
    if "content.xml" in names and "mimetype" in names:
        raise _unsupported("an OpenDocument file (.odt/.ods/.odp)")
    if "META-INF/container.xml" in names:
        raise _unsupported("an EPUB e-book")
    raise _unsupported("a ZIP archive")


def _empty() -> PermanentError:
    return PermanentError("empty_document", "The file is empty: there is no text to index.")


def _unsupported(what: str) -> PermanentError:
    return PermanentError(
        "unsupported_type", f"The file looks like {what}, which cannot be indexed; supported: {SUPPORTED_NAMES}."
    )
