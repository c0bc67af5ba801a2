"""An upload streamed to disk as it arrives: a multipart form's ``file`` part, or a raw body.

The body is never held whole in memory: each block the server receives is parsed
(python-multipart's streaming parser) and the file part's bytes written to the import's file
at once. Every limit is checked on the bytes as they arrive, so a body without a Content-Length
(chunked) is stopped as soon as it passes one (413): the file at ``BACKFILL_API_MAX_UPLOAD_BYTES``;
the form's other fields (the import's options, small strings) each at :data:`MAX_FIELD_BYTES`, all
together at :data:`MAX_FORM_BYTES` and :data:`MAX_FIELDS` (repeated names counted), a part's
headers at :data:`MAX_PART_HEADER_BYTES`. A body other than an upload (JSON) is read by
:func:`read_small`, bounded the same way.
"""
from __future__ import annotations

import re
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from worker.errors import BackfillError

MAX_FIELD_BYTES = 64 * 1024
#: The form's fields, repeats counted: enough for a --map and a --skip of each of a file's 100 columns.
MAX_FIELDS = 256
MAX_FORM_BYTES = 1024 * 1024
MAX_PART_HEADER_BYTES = 16 * 1024
#: RFC 5987's extended file name (``filename*=UTF-8''na%C3%AFve.csv``), which python-multipart leaves out.
_EXTENDED_NAME = re.compile(r"""(?:^|;)\s*filename\*\s*=\s*"?([^;"]*)"?""", re.IGNORECASE)


class UploadError(BackfillError):
    """The upload cannot be taken: ``status`` is the HTTP answer (400, 413), ``code`` stable."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class Form:
    """A multipart form's fields (lists of values), and its file part's name and size."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        self.dest, self.max_bytes = dest, max_bytes
        self.fields: dict[str, list[str]] = {}
        self.filename: str | None = None
        self.size = 0
        self._out: BinaryIO | None = None
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = b"", b""
        self._header_bytes = 0
        self._name: str | None = None
        self._is_file = False
        self._buffer = bytearray()
        self._parts = 0
        self._form_bytes = 0
        self.error: UploadError | None = None

    # -- python-multipart callbacks (they must not raise: the error is kept and raised after write())
    def on_part_begin(self) -> None:
        self._headers, self._field, self._value, self._buffer = {}, b"", b"", bytearray()
        self._header_bytes = 0
        self._parts += 1
        if self._parts > MAX_FIELDS + 1:
            self._fail(413, "form_too_large", f"the form has more than {MAX_FIELDS} fields")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        if self._header_room(end - start):
            self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        if self._header_room(end - start):
            self._value += data[start:end]

    def _header_room(self, more: int) -> bool:
        self._header_bytes += more
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            self._fail(413, "form_too_large", f"a part of the form has more than {MAX_PART_HEADER_BYTES:,} bytes "
                       "of headers")
        return self.error is None

    def on_header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def on_headers_finished(self) -> None:
        if self.error:
            return
        disposition = self._headers.get(b"content-disposition", b"")
        _, params = parse_options_header(disposition)
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = self._name == "file"
        if self._is_file:
            if self.filename is not None:
                self._fail(400, "several_files", "send one file a request (the form has two 'file' parts)")
                return
            named = extended_filename(disposition) or params.get(b"filename", b"").decode("utf-8", "replace")
            # only the name: a browser sends no folders, and a path would say where the sender keeps it
            self.filename = named.replace("\\", "/").rsplit("/", 1)[-1] or "upload.csv"
            self._out = self.dest.open("wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error:
            return
        if self._is_file and self._out is not None:
            self.size += end - start
            if self.size > self.max_bytes:
                self._fail(413, "too_large", f"the file is larger than the limit of {self.max_bytes:,} bytes "
                           "(BACKFILL_API_MAX_UPLOAD_BYTES)")
                return
            self._out.write(data[start:end])
            return
        self._buffer += data[start:end]
        self._form_bytes += end - start
        if len(self._buffer) > MAX_FIELD_BYTES:
            self._fail(413, "field_too_large", f"form field {self._name!r} is longer than {MAX_FIELD_BYTES:,} bytes")
        elif self._form_bytes > MAX_FORM_BYTES:
            self._fail(413, "form_too_large", f"the form's fields hold more than {MAX_FORM_BYTES:,} bytes "
                       "(the file aside)")

    def on_part_end(self) -> None:
        if self.error:
            return
        if self._is_file:
            if self._out is not None:
                self._out.close()
                self._out = None
        elif self._name:
            self.fields.setdefault(self._name, []).append(self._buffer.decode("utf-8", "replace"))
        self._buffer = bytearray()

    def _fail(self, status: int, code: str, message: str) -> None:
        if self.error is None:
            self.error = UploadError(status, code, message)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def extended_filename(disposition: bytes) -> str | None:
    """The file name of RFC 5987's ``filename*=charset'language'percent-encoded`` in a Content-Disposition,
    or None (absent, or not readable in its charset: the plain ``filename`` is used). Pure."""
    found = _EXTENDED_NAME.search(disposition.decode("latin-1"))
    if not found:
        return None
    charset, quote, rest = found.group(1).strip().partition("'")
    _, quote2, encoded = rest.partition("'")
    if not (quote and quote2) or charset.lower() not in ("utf-8", "iso-8859-1"):
        return None
    try:
        return urllib.parse.unquote(encoded, encoding=charset, errors="strict") or None
    except UnicodeDecodeError:
        return None


async def read_form(stream: AsyncIterator[bytes], content_type: str, dest: Path, max_bytes: int) -> Form:
    """Parse a multipart/form-data body from ``stream``, its ``file`` part written to ``dest``."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError(400, "bad_form", "multipart/form-data without a boundary")
    form = Form(dest, max_bytes)
    callbacks = {name: getattr(form, name) for name in (
        "on_part_begin", "on_part_data", "on_part_end", "on_header_field", "on_header_value", "on_header_end",
        "on_headers_finished")}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]  # python-multipart types its callbacks by name as a TypedDict this dict matches
    try:
        async for block in stream:
            try:
                parser.write(block)
            except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors: a bad form
                raise UploadError(400, "bad_form", f"the multipart body cannot be read: {exc}") from None
            if form.error:
                raise form.error
        parser.finalize()
    finally:
        form.close()
    if form.filename is None:
        raise UploadError(400, "no_file", "the form has no 'file' part: send the CSV as a field named file")
    return form


async def read_body(stream: AsyncIterator[bytes], dest: Path, max_bytes: int) -> int:
    """Write a raw body (``Content-Type: text/csv``) to ``dest``; its size."""
    size = 0
    with dest.open("wb") as out:
        async for block in stream:
            size += len(block)
            if size > max_bytes:
                raise UploadError(413, "too_large", f"the file is larger than the limit of {max_bytes:,} bytes "
                                  "(BACKFILL_API_MAX_UPLOAD_BYTES)")
            out.write(block)
    return size


async def read_small(stream: AsyncIterator[bytes], limit: int, what: str) -> bytes:
    """A body that is not an upload (JSON), as it arrives: refused (413) once past ``limit`` bytes."""
    body = bytearray()
    async for block in stream:
        body += block
        if len(body) > limit:
            raise UploadError(413, "too_large", f"{what} is at most {limit:,} bytes")
    return bytes(body)
