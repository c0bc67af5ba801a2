"""Scanning a whole file for file-level problems, then streaming it in chunks.

``scan`` reads every record once, holding only counters, so that an import
either fails before anything is queued or is known to be well formed CSV. It
reads a block of lines at a time (:mod:`producers.blocks`), cutting the file's
chunks as its own text (:mod:`worker.raw`) for the spool; a problem, or what
that reading leaves, is read record by record (:func:`_scan`), which names the
first problem. ``raw_chunks`` cuts the same chunks from the file again;
``chunks`` yields lists of records (records, not lines: quoted fields may hold
newlines), each with the file row numbers of its records.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

from worker.cells import REPORT_COLUMNS, clean_cell, column_letter
from worker.errors import FileProblem
from worker.events.day_times import SAMPLE_ROWS, refuse_a_day_only_time, watched
from worker.events.dialects import Columns, plan_columns
from worker.people.columns import PeopleColumns, plan_people_columns
from worker.raw import is_blank

from .blocks import ROW_LIMIT, Found, Reading, Refused, Watch
from .records import Records
from .sniff import Sniffed, check_bytes, choose_encoding, sniff
from .source import Source
from .spool import Encoded, Spool


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """Everything the producer learned about a file before queueing it."""

    sniffed: Sniffed
    columns: Columns | PeopleColumns
    identifier: str
    #: data records (blank records excluded)
    rows: int
    #: records with no content at all, skipped
    blank: int
    #: first three values of each column, for ``backfill inspect``
    samples: tuple[tuple[str, ...], ...]
    #: its chunks are sent as the file's own text (:mod:`worker.raw`); False: as rows, read by the
    #: per-record reader (a file the scan's block reading left to it, and which it accepted)
    raw: bool = True


def _ours(header: list[str]) -> frozenset[int]:
    """Where our own report columns (_row, _errors, _warnings) are: a re-imported errors file has them."""
    return frozenset(i for i, cell in enumerate(header) if clean_cell(cell).lower() in REPORT_COLUMNS)


def _header(records: Iterator[tuple[int, list[str]]]) -> list[str] | None:
    """Consume ``records`` up to and including the header (the first non-blank record)."""
    for _, record in records:
        if not is_blank(record):
            return record
    return None


def header_of(source: Source, max_columns: int) -> list[str]:
    """The file's header as its sniffed encoding and delimiter read it, for a refusal to show the columns
    that a mapping could settle; [] when the file has none to show (not text, empty, too wide)."""
    try:
        records = iter(Records(source, sniff(source)))
        header = _header(records) or []
    except (FileProblem, UnicodeError, ValueError):
        return []
    return [clean_cell(cell) for cell in header] if len(header) <= max_columns else []


def scan(
    source: Source,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    dialect: str | None = None,
    identifier: str | None = None,
    max_columns: int = 100,
    people: dict | None = None,
    mapping: dict[str, str] | None = None,
    skip: tuple[str, ...] = (),
    spool: Spool | None = None,
) -> Plan:
    """Read the whole file once and return its plan, or raise FileProblem.

    ``people`` (the keyword arguments of :func:`plan_people_columns`: mapping,
    skip, data_to_process) makes it a people file; ``mapping`` and ``skip`` are an
    events file's ``--map`` and ``--skip``. The encoding is chosen from the whole
    file (:func:`~producers.sniff.choose_encoding`). A file whose strict reading
    fails on spaces after a closing quote (``"x" , "y"``) is read again with those
    spaces removed.

    ``spool``: keep the file's chunks while it is read (:mod:`producers.spool`), for queueing to send
    without reading the file again; it belongs to ``source`` from then on (closed with it).
    """
    sniffed = sniff(source, encoding=encoding, delimiter=delimiter)
    sniffed = choose_encoding(sniffed, check_bytes(source, cp1252=sniffed.encoding_reason == "sniffed"), source.name)
    if people is not None:
        def columns_of(header: list[str]) -> Columns | PeopleColumns:
            return plan_people_columns(header, identifier=identifier, max_columns=max_columns, **people)
    else:
        def columns_of(header: list[str]) -> Columns | PeopleColumns:
            return plan_columns(header, dialect=dialect, max_columns=max_columns, identifier=identifier,
                                mapping=mapping, skip=skip)
    if spool is not None:
        source.spool = spool  # (closed with the source, whatever happens here)
    decide = _Decide(columns_of, identifier, max_columns, mapping)
    try:
        plan = _read(source, sniffed, decide, spool)
    except FileProblem as problem:
        if problem.code != "bad_csv" or "expected after" not in str(problem):
            raise
        if spool is not None:
            spool.reset()
        plan = _read(source, dataclasses.replace(sniffed, quote_spaces=True), decide, spool)
    if spool is not None:
        spool.finish()
    return plan


def _read(source: Source, sniffed: Sniffed, decide: _Decide, spool: Spool | None) -> Plan:
    """The scan's block reading (:mod:`producers.blocks`); the per-record reader names what it refused."""
    reading = Reading(source, sniffed, decide.watch, spool.chunk_rows if spool else 2000,
                      spool.chunk_bytes if spool else 2**62, keep=spool is not None)
    try:
        for chunk in reading.chunks():
            if spool is not None:
                spool.put(chunk)
    except Refused:
        if spool is not None:
            spool.give_up()  # (the chunks are then read from the file again, as rows)
        return dataclasses.replace(_scan(source, sniffed, decide), raw=False)
    return decide.plan(sniffed, reading.found)


class _Decide:
    """What the header decides (columns, identifier, what to watch) and what the records then say."""

    def __init__(self, columns_of, identifier: str | None, max_columns: int, mapping: dict[str, str] | None) -> None:
        self.columns_of, self.given, self.max_columns, self.mapping = columns_of, identifier, max_columns, mapping
        self.columns: Columns | PeopleColumns | None = None
        self.identifier = identifier

    def watch(self, header: list[str]) -> Watch:
        """The header's columns and what to check in every record (FileProblem for a bad header)."""
        self.columns = columns = self.columns_of(header)
        times: tuple[int, ...] = ()
        person = None
        if isinstance(columns, PeopleColumns):
            self.identifier = columns.identifier
        else:
            times = tuple(watched(columns, {name.strip().lower() for name in self.mapping or {}}))
            self.identifier = columns.person_kind or self.given
            if self.identifier not in (None, "id", "email"):
                raise FileProblem("bad_identifier", f"--identifier must be id or email, not {self.identifier!r}")
            person = columns.person
        return Watch(2 * max(len(columns.header), self.max_columns), len(columns.header), tuple(columns.unnamed),
                     person if self.identifier is None else None, times, _ours(header))

    def plan(self, sniffed: Sniffed, found: Found) -> Plan:
        """The file's plan once its records are read; FileProblem for what only all of them tell."""
        columns, identifier = self.columns, self.identifier
        assert columns is not None
        if isinstance(columns, Columns) and found.times:  # (only an events file watches its time columns)
            refuse_a_day_only_time(columns, found.times)
        if identifier is None:
            person = columns.person if isinstance(columns, Columns) else None
            if found.first_email and found.first_id and person is not None:
                raise FileProblem(
                    "mixed_identifiers",
                    f"column {columns.header[person]!r} mixes e-mail addresses (first on row {found.first_email}) "
                    f"and ids (first on row {found.first_id}); a file uses one kind for everybody. If it is e-mails "
                    "with typos, pass --identifier email to get the bad ones as row errors",
                )
            identifier = "email" if found.first_email else "id"
        return Plan(sniffed, columns, identifier, found.rows, found.blank, tuple(tuple(s) for s in found.samples))


def _scan(source: Source, sniffed: Sniffed, decide: _Decide) -> Plan:
    """The per-record reading: every record parsed and checked in turn, the first problem named."""
    records = iter(Records(source, sniffed))
    header = _header(records)
    if header is None:
        raise FileProblem("empty_file", f"{source.name} has no header row")
    watch = decide.watch(header)
    found = Found(header, samples=[[] for _ in range(watch.width)], times={index: [] for index in watch.times})
    ours, person = watch.ours, watch.person
    for row, record in records:
        # (the usual record's first cell has text: is_blank's call is paid by the others only)
        if (not record or not record[0] or record[0].isspace() or ours) and is_blank(record, ours):
            found.blank += 1
            continue
        found.rows += 1
        size = len(record) + sum(map(len, record))
        if size > ROW_LIMIT or len(record) > watch.most_cells:
            raise _row_problem(row, record, watch.width)
        if found.rows <= SAMPLE_ROWS:
            if found.rows <= 3:
                for index, cell in enumerate(record[: len(found.samples)]):
                    found.samples[index].append(clean_cell(cell))
            for index in watch.times:  # (the first values of the columns that say which is the time)
                if index < len(record) and (value := clean_cell(record[index])):
                    found.times[index].append(value)
        for index in watch.unnamed:
            if index < len(record) and record[index].strip():
                raise FileProblem(
                    "unnamed_column",
                    f"column {column_letter(index)} has no name in the header but row {row} has a value in it; "
                    "name the column or delete it",
                    line=row,
                )
        if person is not None and person < len(record):
            value = record[person].strip()
            if value:
                if "@" in value:
                    found.first_email = found.first_email or row
                else:
                    found.first_id = found.first_id or row
    return decide.plan(sniffed, found)


@dataclasses.dataclass(frozen=True, slots=True)
class Chunk:
    """A run of records and their file row numbers."""

    number: int
    rows: list[list[str]]
    row_numbers: list[int]


def _row_problem(row: int, record: list[str], width: int) -> FileProblem:
    size = len(record) + sum(map(len, record))
    if size > ROW_LIMIT:
        return FileProblem("row_too_large", f"row {row} holds {size // 1024:,} KiB of text; the limit is "
                                            f"{ROW_LIMIT // 1024 // 1024} MiB a row (a spreadsheet cell holds 32,767 "
                                            "characters): this is not a spreadsheet's CSV", line=row)
    return FileProblem("row_too_wide", f"row {row} has {len(record):,} cells where the header has {width}: this is "
                                       "not a spreadsheet's CSV (a stray quote or delimiter?)", line=row)


def chunks(source: Source, plan: Plan, chunk_rows: int, chunk_bytes: int = 8 * 1024 * 1024) -> Iterator[Chunk]:
    """Stream the data records of ``source`` in chunks of ``chunk_rows`` records or about ``chunk_bytes``
    of text, whichever comes first (blank records skipped)."""
    records = iter(Records(source, plan.sniffed))
    ours = _ours(_header(records) or [])
    yield from batched(((row, record) for row, record in records if not is_blank(record, ours)), chunk_rows,
                       chunk_bytes)


def raw_chunks(source: Source, plan: Plan, chunk_rows: int, chunk_bytes: int) -> Iterator[Encoded]:
    """The chunks the scan cut (the file's own text), read from the file again: for a spool that gave up."""
    def watch(header: list[str]) -> Watch:  # (checked by the scan already)
        return Watch(2**62, len(plan.columns.header), ours=_ours(header))

    try:
        yield from Reading(source, plan.sniffed, watch, chunk_rows, chunk_bytes).chunks()
    except Refused:
        raise FileProblem("unreadable", f"{source.name} changed while it was imported: its chunks no longer read "
                          "as they did when it was scanned") from None


def batched(records: Iterator[tuple[int, list[str]]], chunk_rows: int, chunk_bytes: int,
            ends_chunk: Callable[[list[str]], bool] | None = None) -> Iterator[Chunk]:
    """``records`` (row number, cells) in chunks of ``chunk_rows`` or about ``chunk_bytes`` of text; a
    record for which ``ends_chunk`` is true is the last of its chunk."""
    number = size = 0
    rows: list[list[str]] = []
    numbers: list[int] = []
    for row, record in records:
        rows.append(record)
        numbers.append(row)
        size += len(record) + sum(map(len, record))
        if len(rows) == chunk_rows or size >= chunk_bytes or (ends_chunk is not None and ends_chunk(record)):
            yield Chunk(number, rows, numbers)
            number += 1
            size = 0
            rows, numbers = [], []
    if rows:
        yield Chunk(number, rows, numbers)

