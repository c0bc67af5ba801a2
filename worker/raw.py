"""A CSV chunk as the file's own text, and the reference parse of it into rows. Pure.

The producer finds where records end and checks the whole file; each chunk then travels as the
text of its records: the file's characters (decoded from its encoding, UTF-8 here) from the
chunk's first data record to the end of its last record, blank records between them included,
the header never. With it come what reading it as the producer did needs: the delimiter, whether
Vero's loose quotes apply (``"x" , "y"``) and, for them, whether a quote is open where the chunk
starts (:func:`loosen` counts quotes from the file's start); the first record's row number (every
record counts, blank ones too: they are skipped from the rows but keep their numbers); and the
indexes of our own report columns (``_row``, ``_errors``, ``_warnings`` of a re-imported errors
file), whose text alone leaves a record blank.

:func:`parse_raw` is the reference reading: exactly the rows and row numbers the producer's
reader (:mod:`producers.records`) gives for those records.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from _csv import Reader  # (the reader's type, which typeshed names only there)

# Fields above this are refused (by the producer's scan): no real spreadsheet cell is this long, and a
# file that is one giant field would otherwise be held in memory whole.
FIELD_LIMIT = 1024 * 1024
csv.field_size_limit(FIELD_LIMIT)
#: How a raw chunk's payload starts (a chunk stored as rows is a JSON object, which starts with "{").
MAGIC = b"csv1"
_FIRST = itemgetter(0)


@dataclasses.dataclass(frozen=True, slots=True)
class RawChunk:
    """A chunk as the file's text and what reading it needs (see the module's docstring)."""

    #: UTF-8, from the chunk's first data record to the end of its last record
    text: bytes
    #: the row number of the chunk's first record
    first_row: int
    delimiter: str
    #: spaces between a closing quote and the next delimiter or line end are removed before parsing
    loose: bool = False
    #: with ``loose``: an odd number of quotes came before the chunk in the file (see :func:`loosen`)
    quote_open: bool = False
    #: our own report columns: a record whose only text is in them is blank
    report_columns: tuple[int, ...] = ()


def encode_raw(chunk: RawChunk) -> bytes:
    """A chunk's stored form: :data:`MAGIC`, its fields as one JSON line, then its text."""
    head = {"first_row": chunk.first_row, "delimiter": chunk.delimiter, "loose": chunk.loose,
            "quote_open": chunk.quote_open, "report_columns": list(chunk.report_columns)}
    return MAGIC + orjson.dumps(head) + b"\n" + chunk.text


def is_raw(payload: bytes) -> bool:
    """Whether a stored chunk is raw text (:func:`encode_raw`), not rows."""
    return payload[:len(MAGIC)] == MAGIC


def read_raw(payload: bytes) -> RawChunk:
    """The chunk :func:`encode_raw` stored."""
    end = payload.index(b"\n")
    head = orjson.loads(payload[len(MAGIC):end])
    return RawChunk(payload[end + 1:], head["first_row"], head["delimiter"], head["loose"], head["quote_open"],
                    tuple(head["report_columns"]))


def reader(lines: Iterable[str], delimiter: str) -> Reader:
    """The strict CSV reader every reading of a file uses (spaces after a delimiter skipped)."""
    return csv.reader(lines, delimiter=delimiter, skipinitialspace=True, strict=True)


def parse_raw(chunk: RawChunk) -> tuple[list[list[str]], list[int]]:
    """The chunk's data records and their row numbers, blank records skipped: the reference parse."""
    records = _records(chunk.text.decode(), chunk.delimiter, chunk.loose, chunk.quote_open)
    first = chunk.first_row
    blank = blank_indexes(records, frozenset(chunk.report_columns))
    if not blank:
        return records, list(range(first, first + len(records)))
    skipped = set(blank)
    kept = [index for index in range(len(records)) if index not in skipped]
    return [records[index] for index in kept], [first + index for index in kept]


def _records(text: str, delimiter: str, loose: bool, quote_open: bool) -> list[list[str]]:
    """The records of ``text`` as the strict reader reads them (an empty line may come as ``[""]``, not
    ``[]``: both are blank)."""
    if '"' not in text and not loose and delimiter != " ":
        # No quote, lines ending in LF or CRLF: each line is a record and its cells are what lies between
        # delimiters, less the spaces that start a cell (str.split looped over in C: twice as fast).
        plain = text.replace("\r\n", "\n") if "\r" in text else text
        if "\r" not in plain:
            for start in (delimiter, "\n"):
                while start + " " in plain:
                    plain = plain.replace(start + " ", start)
            split = plain.lstrip(" ").split("\n")
            if split[-1] == "":
                split.pop()
            return list(map(str.split, split, repeat(delimiter)))
    lines: Iterable[str] = io.StringIO(text, newline="")
    if loose:
        lines = loosen(lines, delimiter, quote_open)
    return list(reader(lines, delimiter))


def loosen(lines: Iterable[str], delimiter: str, inside: bool = False) -> Iterator[str]:
    """``lines`` with the spaces between a closing quote and the next delimiter or line end removed.

    Vero's own example writes ``"x" , "y"``; the strict parser refuses a space after a closing
    quote. Quotes are tracked across lines (a quoted field may hold newlines): every quote
    character turns ``inside`` over, from the file's start (``inside``: an odd number of quotes
    came before ``lines``); a doubled quote inside a field closes and reopens it, which leaves it
    as it is. Only used for a file whose strict reading failed there, so the usual file pays nothing.
    """
    for line in lines:
        if '"' not in line:
            yield line
            continue
        parts = line.split('"')
        for index in range(1, len(parts)):
            inside = not inside
            if not inside:
                part = parts[index]
                rest = part.lstrip(" \t")
                if rest != part and (not rest or rest[0] == delimiter or rest[0] in "\r\n"):
                    parts[index] = rest
        yield '"'.join(parts)


def is_blank(record: list[str], ours: frozenset[int] = frozenset()) -> bool:
    """A record with no text (empty cells or spaces), or with text only in our own report columns."""
    # A plain loop: nearly every record's first cell has data.
    for cell in record:
        if cell and not cell.isspace():
            return bool(ours) and all(i in ours or not c or c.isspace() for i, c in enumerate(record))
    return True


def blank_indexes(records: list[list[str]], ours: frozenset[int] = frozenset()) -> list[int]:
    """The indexes of the blank records (:func:`is_blank`), in order.

    The usual chunk has none, and every record's first cell has text: that is checked by loops in C
    (``map``), so the usual record costs no Python step here.
    """
    if not ours:
        try:
            heads = list(map(_FIRST, records))
        except IndexError:  # an empty record (an empty line)
            heads = None
        if heads is not None and "" not in heads and not any(map(str.isspace, heads)):
            return []
    return [index for index, record in enumerate(records) if is_blank(record, ours)]

