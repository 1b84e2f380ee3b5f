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
SUPPORTED_NAMES = ("PDF, DOCX, HTML, Markdown and plain text "
                   "(UTF-8, UTF-16 with a BOM, or Latin-1/Windows-1252)")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SAMPLE_CHARS = 8192  # the share of control characters is judged on the start of the text
# Control characters other than tab, newlines and form feed: a few are tolerated in text.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
# Windows-1252 where it differs from Latin-1 (0x80-0x9F); its 5 undefined bytes keep their
# Latin-1 meaning, so that any bytes decode.
_CP1252 = {b: bytes([b]).decode("cp1252", "ignore") or chr(b) for b in range(0x80, 0xA0)}

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
    text = _as_text(data).lstrip("\ufeff")
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
    """Text of a text file, decoded as detection decoded it (BOM stripped). Only decoding is
    checked here: whether the bytes are text at all is detection's job."""
    decoded = _decode(data)
    if decoded is None:
        raise PermanentError("corrupt_file", "The file starts with a UTF-16 byte-order mark but is not valid UTF-16.")
    return decoded[0].lstrip("\ufeff")


def _decode(data: bytes) -> tuple[str, str] | None:
    """(text, encoding): the one decoding of text files, for detection and parsing alike.

    UTF-16 with a BOM; else UTF-8, also when a few bytes are damaged (a file cut in the
    middle of a character) as long as most non-ASCII characters are valid UTF-8; else
    Windows-1252, which any bytes decode as. None only for broken UTF-16.
    """
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            return None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "replace")
    damaged = text.count("\ufffd") - data.count("\ufffd".encode())
    if _non_ascii(text) - damaged > damaged:
        return text, "utf-8"
    return data.decode("latin-1").translate(_CP1252), "cp1252"


def _as_text(data: bytes) -> str:
    """The decoded text, or PermanentError when the bytes are not (mostly printable) text.

    NUL is looked for in the whole file (text never holds one, and PostgreSQL refuses it);
    other control characters are judged on a sample. Bytes that are neither UTF-8 nor
    mostly ASCII are text in another encoding (Cyrillic, CJK...), which Windows-1252 would
    turn into gibberish.
    """
    utf16 = data.startswith(_UTF16_BOMS)
    decoded = None if not utf16 and b"\x00" in data else _decode(data)
    if decoded is None or (utf16 and "\x00" in decoded[0]):
        raise _unsupported(_binary_kind(data))
    text, encoding = decoded
    sample = text[:_SAMPLE_CHARS]
    if len(_CONTROL_CHARS.findall(sample)) > len(sample) * 0.01:
        raise _unsupported(_binary_kind(data))
    if encoding == "cp1252" and _non_ascii(sample) > len(sample) * 0.3:
        raise _unsupported("text in an encoding other than UTF-8, UTF-16 or Latin-1/Windows-1252 "
                           "(save it as UTF-8)")
    return text


def _non_ascii(text: str) -> int:
    return len(text) - len(text.encode("ascii", "ignore"))


def _binary_kind(data: bytes) -> str:
    for magic, name in _KNOWN_BINARY:
        if data.startswith(magic):
            return name
    if data.startswith(b"RIFF") and data[8:12] in _RIFF_KINDS:
        return _RIFF_KINDS[data[8:12]]
    if data[4:8] == b"ftyp":
        return "an MP4/QuickTime video or HEIC image"
    if data.startswith(_UTF16_BOMS):
        return "binary data (not valid UTF-16 text, or UTF-16 holding NUL characters)"
    if b"\x00" in data:
        return "binary data (it holds NUL bytes, which text never does)"
    return "binary data (control characters: not text in UTF-8, UTF-16 or Latin-1/Windows-1252)"


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
