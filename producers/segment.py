"""Segment archives: newline-delimited JSON messages (gzipped or not), a JSON array, or ``{"batch": [...]}``.

Read like a CSV file: :func:`scan` reads the whole file once (every file-level problem found
before anything is queued), :func:`chunks` streams it again. A line is a row: row numbers are
line numbers (blank lines are skipped and keep their numbers). An array or a batch object is
read whole (at most :data:`DOCUMENT_LIMIT` bytes) and its N-th message is row N. A file whose
first line is a whole batch holds a batch a line (a log of ``/v1/batch`` bodies): its N-th
message is row N. A batch's messages take its ``sentAt``, ``context`` and ``integrations``
(:mod:`worker.segment.envelope`). Each row is the message's JSON text, parsed and checked by
the worker (:mod:`worker.segment.messages`).
"""
from __future__ import annotations

from collections.abc import Iterator

import orjson

from worker.errors import ConfigError, FileProblem
from worker.events.dialects import Columns
from worker.segment import envelope

from .sniff import Sniffed
from .source import Source
from .split import Chunk, Plan, batched

#: Names a file of Segment messages has (with or without .gz); other names are sniffed by content.
EXTENSIONS = (".ndjson", ".jsonl", ".json")
#: The longest line read at all; a longer one is no archive's message (Segment's limit is 32 KB:
#: lines between the two are row errors, message_too_large).
LINE_LIMIT = 1024 * 1024
#: The largest JSON array or batch document read (they are read whole).
DOCUMENT_LIMIT = 256 * 1024 * 1024
#: The one column of a Segment import's error rows: the message as it was.
COLUMNS = Columns("segment", ("message",), 0, 0, None, None, (), (), (), ())


def named_like(name: str) -> bool:
    """True for a file name that says it holds JSON messages."""
    lowered = name.lower().removesuffix(".gz")
    return lowered.endswith(EXTENSIONS)


def chosen(name: str, format: str | None, source: Source) -> bool:
    """True when the file is to be read as Segment messages: ``format`` "segment", or None/"auto" and a
    .ndjson/.jsonl/.json name or a first character that opens a JSON object or array."""
    if format not in (None, "auto", "csv", "segment"):
        raise ConfigError(f"--format {format!r}: csv or segment")
    if format in ("csv", "segment"):
        return format == "segment"
    return (name != "-" and named_like(name)) or looks_like(source)


def looks_like(source: Source) -> bool:
    """True when the file's first non-blank character opens a JSON object or array."""
    with source.binary() as stream:
        start = stream.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    return start[:1] in (b"{", b"[")


def _lines(source: Source) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines; refuses lines past LINE_LIMIT and text not UTF-8."""
    with source.binary() as stream:
        number = 0
        while True:
            raw = stream.readline(LINE_LIMIT + 1)
            if not raw:
                return
            number += 1
            if len(raw) > LINE_LIMIT and not raw.endswith(b"\n"):
                raise FileProblem("line_too_long", f"line {number} of {source.name} is longer than "
                                  f"{LINE_LIMIT // 1024 // 1024} MiB: this is not a file of Segment messages "
                                  "(one JSON message a line)", line=number)
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise FileProblem("not_utf8", f"line {number} of {source.name} is not UTF-8 (byte {exc.start + 1}):"
                                  " JSON is UTF-8; export the messages again", line=number) from None
            if text:
                yield number, text


def _form(source: Source) -> str:
    """How the file holds its messages: "lines" (one a line), "batches" (a batch a line), "array" or
    "batch" (read whole)."""
    lines = _lines(source)
    for _, text in lines:
        if text.startswith("{"):
            try:
                first = orjson.loads(text)
            except orjson.JSONDecodeError:
                # a pretty-printed object (read whole), or a damaged first message of a file of lines
                following = next((t for _, t in lines), "")
                return "lines" if following.startswith("{") else "batch"
            return "batches" if envelope.is_envelope(first) else "lines"
        if text.startswith("["):
            return "array"
        return "lines"  # the worker says what each line is
    raise FileProblem("empty_file", f"{source.name} holds no messages")


def _document(source: Source, shape: str) -> list:
    """The messages of a file read whole: a batch's (each with what the batch shares), or an array's
    (an item that is itself a batch gives its messages, in its place)."""
    with source.binary() as stream:
        raw = stream.read(DOCUMENT_LIMIT + 1)
    if len(raw) > DOCUMENT_LIMIT:
        raise FileProblem("too_large", f"{source.name} is a JSON document larger than {DOCUMENT_LIMIT // 1024**2} "
                          "MiB, read whole: write it as one message a line (NDJSON), which has no limit")
    try:
        data = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        raise FileProblem("bad_json", f"{source.name} is not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("batch"), list):
        return envelope.messages(data)
    if not isinstance(data, list):
        raise FileProblem("bad_json", f"{source.name} is a JSON object without a \"batch\" list of messages"
                          if shape == "batch" else f"{source.name} is not a list of messages")
    return [m for item in data for m in (envelope.messages(item) if envelope.is_envelope(item) else (item,))]


def _batch_lines(source: Source) -> Iterator[tuple[str | None, object]]:
    """(text, None) for a line that is no batch (a message, or what the worker will say is wrong with
    it), (None, message) for each message of a line that is one (with what the batch shares)."""
    for _, text in _lines(source):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            data = None
        if envelope.is_envelope(data):
            for message in envelope.messages(data):
                yield None, message
        else:
            yield text, None


def _rows(source: Source, form: str) -> Iterator[tuple[int, str]]:
    if form == "lines":
        yield from _lines(source)
        return
    items = _batch_lines(source) if form == "batches" else ((None, m) for m in _document(source, form))
    for number, (text, message) in enumerate(items, 1):
        if text is not None:
            yield number, text
            continue
        try:
            yield number, orjson.dumps(message).decode()
        except orjson.JSONEncodeError:  # nested deeper than JSON can be written back: the row says so
            yield number, f"(message {number}: nested too deeply to be read)"


def scan(source: Source) -> Plan:
    """Read the whole file once: its form and its number of messages, or FileProblem."""
    form = _form(source)
    rows = 0
    samples: list[str] = []
    for _, text in _rows(source, form):
        rows += 1
        if rows <= 3:
            samples.append(text[:200])
    shown = {"lines": "one message a line", "batches": "one batch a line"}.get(form, form)
    sniffed = Sniffed("utf-8", ",", False, f"JSON ({shown})")
    return Plan(sniffed, COLUMNS, "id", rows, 0, (tuple(samples),))


def chunks(source: Source, plan: Plan, chunk_rows: int, chunk_bytes: int = 8 * 1024 * 1024) -> Iterator[Chunk]:
    """The messages in chunks of ``chunk_rows`` or about ``chunk_bytes``; a chunk also ends after every
    alias call, so that no event of a chunk comes after an alias in the file (see worker/segment/pipeline.py)."""
    records = ((row, [text]) for row, text in _rows(source, _form(source)))
    yield from batched(records, chunk_rows, chunk_bytes, ends_chunk=is_alias)


def is_alias(record: list[str]) -> bool:
    """True for a record holding an alias call (a chunk ends after it), read as the worker reads the type
    (spaces, case, JSON escapes)."""
    text = record[0]
    if "alias" not in text.lower() and "\\u" not in text:
        return False
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    kind = message.get("type") if isinstance(message, dict) else None
    return isinstance(kind, str) and kind.strip().lower() == "alias"
