"""The scan's reading: a file's records found a block of lines at a time, its chunks cut as its own text.

:func:`producers.split.scan` reads a CSV file here. Each block (whole lines, about
:data:`BLOCK_CHARS` of text) is either text with no quote whose checks need no cells (most blocks
of most files: every line is one record, checked with string methods looped over in C), or parsed
by the strict CSV reader in one call, its checks made on the whole block with ``map`` where they
can be. A record cut by the block's end (a quoted field holding newlines) is read again with the
next block. Chunks are cut where :func:`producers.split.batched` cuts them (``chunk_rows`` data
records, or ``chunk_bytes`` of cells) and kept as the file's text (:mod:`worker.raw`); a record's
text bounds its cells' size, so sizes are counted only when a chunk may reach ``chunk_bytes``.

Every problem (and whatever this reading does not settle cheaply) raises :class:`Refused`: the
scan then reads the file with the per-record reader (:mod:`producers.records`), which names the
first problem as it always did.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Generator, Iterator
from itertools import repeat
from operator import itemgetter

from worker.cells import clean_cell
from worker.errors import FileProblem
from worker.events.day_times import SAMPLE_ROWS
from worker.raw import FIELD_LIMIT, RawChunk, blank_indexes, encode_raw, is_blank, loosen, parse_raw, reader

from .sniff import Sniffed
from .source import Source
from .spool import Encoded

#: The most text one row may hold (characters): its cells are bounded one by one (FIELD_LIMIT) and
#: a physical line is too (LINE_LIMIT), but a quoted field may hold newlines.
ROW_LIMIT = 2 * 1024 * 1024
#: Text read at a time (characters, whole lines): a few thousand records, checked together.
BLOCK_CHARS = 256 * 1024
_FIRST = itemgetter(0)


class Refused(Exception):
    """Something only the per-record reader settles (a problem, most often): read the file with it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Watch:
    """What the scan checks in every data record, decided from the header."""

    #: more cells than this is a row_too_wide
    most_cells: int
    #: the header's columns (first values are sampled from each)
    width: int = 0
    #: columns without a name in the header: a value in one is a problem
    unnamed: tuple[int, ...] = ()
    #: the column whose values say e-mail or id, when the file must tell which
    person: int | None = None
    #: the columns whose first values say which is the time
    times: tuple[int, ...] = ()
    #: our own report columns (a re-imported errors file's): a record whose only text is there is blank
    ours: frozenset[int] = frozenset()


@dataclasses.dataclass(slots=True)
class Found:
    """What the reading learned from the file's records."""

    header: list[str] | None = None
    rows: int = 0
    blank: int = 0
    samples: list[list[str]] = dataclasses.field(default_factory=list)
    times: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    first_email: int | None = None
    first_id: int | None = None


@dataclasses.dataclass(slots=True)
class _Open:
    """The chunk being cut."""

    first_row: int
    quote_open: bool
    parts: list[str] = dataclasses.field(default_factory=list)
    rows: int = 0
    last_row: int = 0
    #: its text's length so far, which bounds its cells' size (a record's text holds its cells and
    #: a delimiter or line end after each, or more)
    chars: int = 0
    #: its cells' size as batched counts it, once it may reach chunk_bytes
    size: int | None = None
    #: blank records read after its last data record: its text if a data record follows in it
    gap: str = ""


class Reading:
    """One reading of a file: its records checked (:class:`Found`) and its chunks, as raw text."""

    def __init__(self, source: Source, sniffed: Sniffed, on_header: Callable[[list[str]], Watch],
                 chunk_rows: int, chunk_bytes: int, keep: bool = True) -> None:
        self.source, self.sniffed, self.on_header = source, sniffed, on_header
        self.chunk_rows, self.chunk_bytes, self.keep = chunk_rows, chunk_bytes, keep
        self.delimiter = sniffed.delimiter
        self.found = Found()
        self.watch = Watch(0)
        self._records = 0  # complete records read before the block (the header and those before it too)
        self._quotes = 0  # quote characters before the block (loose quotes: what is open where a chunk starts)
        self._open: _Open | None = None
        self._number = 0

    def chunks(self) -> Iterator[Encoded]:
        """Read the file, yielding its chunks as they are cut; :attr:`found` once done. Refused on trouble."""
        try:
            text = io.TextIOWrapper(self.source.binary(), encoding=self.sniffed.encoding, newline="")
        except (FileProblem, OSError, EOFError):
            raise Refused from None
        carry: list[str] = []
        try:
            if self.sniffed.sep_line:
                text.readline()
            while lines := text.readlines(BLOCK_CHARS):
                carry = yield from self._block(carry + lines if carry else lines)
                if sum(map(len, carry)) > 2 * ROW_LIMIT:
                    raise Refused  # a record longer than any row may be (or a quote never closed)
        except (FileProblem, UnicodeDecodeError, OSError, EOFError, csv.Error):
            raise Refused from None
        finally:
            text.close()
        if carry or self.found.header is None:  # a quote never closed; no header
            raise Refused
        if self._open is not None:
            yield self._emit(self._open)

    def _block(self, lines: list[str]) -> Generator[Encoded, None, list[str]]:
        """Check and cut the complete records of ``lines``; returns the lines of the record they cut."""
        text = "".join(lines)
        watch, found = self.watch, self.found
        exact = self._open is not None and self._open.size is not None or (
            (self._open.chars if self._open else 0) + len(text) + 1 >= self.chunk_bytes)
        needs_cells = found.header is None or exact or found.rows < SAMPLE_ROWS or bool(
            watch.unnamed or watch.ours or self.sniffed.quote_spaces
            or watch.person is not None and (found.first_email is None or found.first_id is None))
        longest = max(map(len, lines))
        if not needs_cells and longest <= FIELD_LIMIT and '"' not in text and self._quote_free(lines, longest):
            records, ends, used = None, None, len(lines)
        else:
            records, ends, used = self._parse(lines)
        start = 0
        if found.header is None:
            assert records is not None  # (a block without the header is parsed)
            start = self._header(records)
        yield from self._data(lines, text, records, ends, start, used, exact)
        if self.sniffed.quote_spaces:
            self._quotes += (text if used == len(lines) else "".join(lines[:used])).count('"')
        self._records += len(records) if records is not None else used
        return lines[used:]

    def _quote_free(self, lines: list[str], longest: int) -> bool:
        """Whether lines without a quote are records that need no parsing: none blank, none too wide."""
        heads = list(map(_FIRST, map(str.partition, lines, repeat(self.delimiter))))
        if "" in heads or any(map(str.isspace, heads)):
            return False  # a blank record, maybe: parsed
        if longest >= self.watch.most_cells and max(map(str.count, lines, repeat(self.delimiter))) \
                >= self.watch.most_cells:
            raise Refused  # row_too_wide
        return True

    def _parse(self, lines: list[str]) -> tuple[list[list[str]], list[int] | None, int]:
        """The complete records of ``lines``, the line each ends on (None: one line each) and the lines they use."""
        records: list[list[str]] = []
        try:
            records.extend(reader(self._lines(lines), self.delimiter))
            if len(records) == len(lines):
                return records, None, len(lines)
        except csv.Error:
            pass
        records, ends = [], []
        parsed = reader(self._lines(lines), self.delimiter)
        try:
            for record in parsed:  # (a record over several lines: where each ends is needed)
                records.append(record)
                ends.append(parsed.line_num)
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                raise Refused from None
        return records, ends, ends[-1] if ends else 0

    def _lines(self, lines: list[str]) -> Iterator[str]:
        return loosen(lines, self.delimiter, self._quotes % 2 == 1) if self.sniffed.quote_spaces else iter(lines)

    def _header(self, records: list[list[str]]) -> int:
        """Find the header among the block's records (blank records before it are skipped); where data starts."""
        for index, record in enumerate(records):
            if not is_blank(record):
                self.found.header = record
                self.watch = watch = self.on_header(record)
                self.found.samples = [[] for _ in range(watch.width)]
                self.found.times = {column: [] for column in watch.times}
                return index + 1
        return len(records)

    def _data(self, lines: list[str], text: str, records: list[list[str]] | None, ends: list[int] | None,
              start: int, used: int, exact: bool) -> Iterator[Encoded]:
        """Check the block's data records (from ``start``) and cut them into chunks."""
        found, watch = self.found, self.watch
        count = (len(records) if records is not None else used) - start
        if found.header is None or count <= 0:
            self._rest(lines, 0, used)
            return
        data: list[int] | range = range(start, start + count)
        rows: list[list[str]] = []
        if records is not None:
            rows = records[start:] if start else records
            blank = blank_indexes(rows, watch.ours)
            if blank:
                skipped = {start + index for index in blank}
                data = [index for index in data if index not in skipped]
                rows = [records[index] for index in data]
                found.blank += len(blank)
        sizes = self._check(rows, text, exact, data)
        found.rows += len(data)
        yield from self._cut(lines, data, ends, sizes, used)

    def _check(self, rows: list[list[str]], text: str, exact: bool, data) -> list[int] | None:
        """The file-level checks of the block's data records ``rows`` (none when it was not parsed); their
        sizes when they are needed (``exact``, or a block that may hold a record over ROW_LIMIT)."""
        watch, found = self.watch, self.found
        if not rows:
            return None
        if max(map(len, rows)) > watch.most_cells:
            raise Refused  # row_too_wide
        sizes = None
        if exact or len(text) + 1 > ROW_LIMIT:
            sizes = [len(record) + sum(map(len, record)) for record in rows]
            if max(sizes) > ROW_LIMIT:
                raise Refused  # row_too_large
        for index in watch.unnamed:
            if any(index < len(record) and record[index].strip() for record in rows):
                raise Refused  # unnamed_column
        if found.rows < SAMPLE_ROWS:
            self._first_rows(rows[:SAMPLE_ROWS - found.rows], found.rows)
        if watch.person is not None and (found.first_email is None or found.first_id is None):
            self._identifiers(rows, data)
        return sizes if exact else None

    def _first_rows(self, rows: list[list[str]], before: int) -> None:
        """The file's first data rows: samples of every column, values of the time columns."""
        found = self.found
        for number, record in enumerate(rows, before + 1):
            if number <= 3:
                for index, cell in enumerate(record[: len(found.samples)]):
                    found.samples[index].append(clean_cell(cell))
            for index in self.watch.times:
                if index < len(record) and (value := clean_cell(record[index])):
                    found.times[index].append(value)

    def _identifiers(self, rows: list[list[str]], data) -> None:
        """The row numbers of the first e-mail address and of the first id in the person column."""
        person, found = self.watch.person, self.found
        assert person is not None
        for record, index in zip(rows, data):
            if person < len(record) and (value := record[person].strip()):
                if "@" in value:
                    found.first_email = found.first_email or self._records + index + 1
                else:
                    found.first_id = found.first_id or self._records + index + 1
                if found.first_email and found.first_id:
                    return

    def _cut(self, lines: list[str], data, ends: list[int] | None, sizes: list[int] | None,
             used: int) -> Iterator[Encoded]:
        """Add the block's data records (indexes ``data``) to chunks; yield those that are full."""
        chunk, cursor, position, count = self._open, 0, 0, len(data)
        while position < count:
            if chunk is None:
                first = data[position]
                cursor = (ends[first - 1] if first else 0) if ends is not None else first
                chunk = self._open = _Open(self._records + first + 1, self._quote_open(lines, cursor),
                                           size=0 if sizes is not None else None)
            take = min(count, position + self.chunk_rows - chunk.rows)
            if sizes is not None:
                take = self._by_size(chunk, sizes, position, take)
            last = data[take - 1]
            end = ends[last] if ends is not None else last + 1
            if self.keep:
                piece = chunk.gap + "".join(lines[cursor:end])
                chunk.parts.append(piece)
                chunk.chars += len(piece)
            chunk.gap = ""
            chunk.rows += take - position
            chunk.last_row = self._records + last + 1
            cursor, position = end, take
            if chunk.rows == self.chunk_rows or (chunk.size is not None and chunk.size >= self.chunk_bytes):
                yield self._emit(chunk)
                chunk = self._open = None
        self._rest(lines, cursor, used)

    def _rest(self, lines: list[str], cursor: int, used: int) -> None:
        """The block's blank records after the open chunk's last data record (they are its text if one follows)."""
        if self._open is not None and self.keep and cursor < used:
            self._open.gap += "".join(lines[cursor:used])

    def _by_size(self, chunk: _Open, sizes: list[int], position: int, take: int) -> int:
        """Where the chunk's records end when its cells reach chunk_bytes first (as batched cuts it)."""
        size = chunk.size
        if size is None:  # (a chunk opened in a block read without sizes: its cells so far)
            size = sum(len(record) + sum(map(len, record)) for record in parse_raw(self._raw(chunk))[0])
        end = position
        while end < take:
            size += sizes[end]
            end += 1
            if size >= self.chunk_bytes:
                break
        chunk.size = size
        return end

    def _quote_open(self, lines: list[str], line: int) -> bool:
        """Loose quotes: whether an odd number of quotes came before ``line`` (see :func:`worker.raw.loosen`)."""
        if not self.sniffed.quote_spaces:
            return False
        return (self._quotes + "".join(lines[:line]).count('"')) % 2 == 1

    def _raw(self, chunk: _Open) -> RawChunk:
        return RawChunk("".join(chunk.parts).encode(), chunk.first_row, self.delimiter, self.sniffed.quote_spaces,
                        chunk.quote_open, tuple(sorted(self.watch.ours)))

    def _emit(self, chunk: _Open) -> Encoded:
        number = self._number
        self._number += 1
        payload = encode_raw(self._raw(chunk)) if self.keep else b""
        return Encoded(number, payload, chunk.rows, chunk.last_row)
