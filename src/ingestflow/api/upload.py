"""Streaming multipart upload with a size limit.

The body is read from the socket chunk by chunk and parsed with python-multipart's
streaming parser, so an upload over the limit is refused (413) as soon as the limit is
crossed, and a declared Content-Length over it is refused before reading anything. Only
the one file part is kept in memory, never more than the limit. A body that ends before
its closing boundary (a cut-off upload) is refused, not stored truncated.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from ingestflow.api.errors import ApiError

FILE_FIELD = "file"
ENVELOPE_BYTES = 64 * 1024  # multipart boundaries, part headers and small fields
UNNAMED = "upload"  # the name of a file part sent without a filename


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"The upload is larger than the limit of {limit} bytes.")


def _cut_short() -> ApiError:
    return ApiError(400, "bad_multipart",
                    "The multipart body ended before its closing boundary: the upload was cut short; send it again.")


class _Collector:
    """python-multipart callbacks: keep the ``file`` part's name and bytes, count the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.filename: str | None = None
        self.data = bytearray()
        self.found = False
        self.complete = False  # the closing boundary was seen
        self._in_file = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin, "on_part_data": self._part_data,
            "on_header_field": self._header_field, "on_header_value": self._header_value_cb,
            "on_header_end": self._header_end, "on_headers_finished": self._headers_finished,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._in_file, self._disposition = False, b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == FILE_FIELD.encode() and not self.found:
            self.found = self._in_file = True
            raw = options.get(b"filename")
            # Invalid UTF-8 becomes lone surrogates, which the name check refuses.
            self.filename = UNNAMED if raw is None else raw.decode("utf-8", "surrogateescape")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            if len(self.data) + (end - start) > self.limit:
                raise _too_large(self.limit)
            self.data += data[start:end]

    def _end(self) -> None:
        self.complete = True


async def read_upload(request: Request, limit: int) -> Upload:
    """The ``file`` part of a multipart/form-data body; 413 past ``limit`` bytes."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(415, "unsupported_media_type",
                       "Send the document as multipart/form-data with a 'file' field.")
    body_limit = limit + ENVELOPE_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > body_limit:
        raise _too_large(limit)
    collector = _Collector(limit)
    received = 0
    try:
        parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise _too_large(limit)
            parser.write(chunk)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise ApiError(400, "bad_multipart", "The multipart body is malformed.") from exc
    except ClientDisconnect:
        raise _cut_short() from None
    if not collector.complete:  # finalize() does not check this
        raise _cut_short()
    if not collector.found or collector.filename is None:
        raise ApiError(400, "missing_file", "The multipart body has no 'file' field.")
    return Upload(collector.filename, bytes(collector.data))
