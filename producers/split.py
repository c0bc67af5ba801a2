"""Scanning a whole file for file-level problems, then streaming it in chunks.

``scan`` reads every record once, holding only counters, so that an import
either fails before anything is queued or is known to be well formed CSV.
``chunks`` then yields lists of records (records, not lines: quoted fields may
hold newlines), each with the file row numbers of its records.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

from worker.cells import REPORT_COLUMNS, clean_cell, column_letter
from worker.errors import FileProblem
from worker.events.day_times import SAMPLE_ROWS, refuse_a_day_only_time, watched
from worker.events.dialects import Columns, plan_columns
from worker.people.columns import PeopleColumns, plan_people_columns

from .records import Records
from .sniff import Sniffed, check_bytes, choose_encoding, sniff
from .source import Source
from .spool import Spool

#: The most text one row may hold (characters): its cells are bounded one by one (FIELD_LIMIT) and
#: a physical line is too (LINE_LIMIT), but a quoted field may hold newlines.
ROW_LIMIT = 2 * 1024 * 1024


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


def _blank(record: list[str], ours: frozenset[int] = frozenset()) -> bool:
    # A plain loop: called for every record twice, and nearly every record's first cell has data.
    for cell in record:
        if cell and not cell.isspace():
            return bool(ours) and _only_ours(record, ours)
    return True


def _only_ours(record: list[str], ours: frozenset[int]) -> bool:
    """True when the record's only text is in our own report columns (an errors file's closing note)."""
    return all(i in ours or not cell or cell.isspace() for i, cell in enumerate(record))


def _ours(header: list[str]) -> frozenset[int]:
    """Where our own report columns (_row, _errors, _warnings) are: a re-imported errors file has them."""
    return frozenset(i for i, cell in enumerate(header) if clean_cell(cell).lower() in REPORT_COLUMNS)


def _header(records: Iterator[tuple[int, list[str]]]) -> list[str] | None:
    """Consume ``records`` up to and including the header (the first non-blank record)."""
    for _, record in records:
        if not _blank(record):
            return record
    return None


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
    try:
        plan = _scan(source, sniffed, identifier, columns_of, max_columns, spool, mapping)
    except FileProblem as problem:
        if problem.code != "bad_csv" or "expected after" not in str(problem):
            raise
        if spool is not None:
            spool.reset()
        plan = _scan(source, dataclasses.replace(sniffed, quote_spaces=True), identifier, columns_of, max_columns,
                     spool, mapping)
    if spool is not None:
        spool.finish()
    return plan


def _scan(source: Source, sniffed: Sniffed, identifier: str | None, columns_of, max_columns: int,
          spool: Spool | None, mapping: dict[str, str] | None) -> Plan:
    records = iter(Records(source, sniffed))
    header = _header(records)
    if header is None:
        raise FileProblem("empty_file", f"{source.name} has no header row")
    person: int | None = None
    columns: Columns | PeopleColumns
    columns = columns_of(header)
    watch: tuple[int, ...] = ()
    if isinstance(columns, PeopleColumns):
        identifier = columns.identifier
    else:
        watch = watched(columns, {name.strip().lower() for name in mapping or {}})
        identifier = columns.person_kind or identifier
        if identifier not in (None, "id", "email"):
            raise FileProblem("bad_identifier", f"--identifier must be id or email, not {identifier!r}")
        person = columns.person
    unnamed = columns.unnamed
    most_cells = 2 * max(len(columns.header), max_columns)
    samples: list[list[str]] = [[] for _ in columns.header]
    ours = _ours(header)
    first_email = first_id = None
    times: dict[int, list[str]] = {index: [] for index in watch}
    rows = blank = 0
    add = spool.add if spool is not None else None
    for row, record in records:
        # (the usual record's first cell has text: _blank's call is paid by the others only)
        if (not record or not record[0] or record[0].isspace() or ours) and _blank(record, ours):
            blank += 1
            continue
        rows += 1
        size = len(record) + sum(map(len, record))
        if size > ROW_LIMIT or len(record) > most_cells:
            raise _row_problem(row, record, len(columns.header))
        if add is not None:
            add(row, record, size)
        if rows <= SAMPLE_ROWS:
            if rows <= 3:
                for index, cell in enumerate(record[: len(samples)]):
                    samples[index].append(clean_cell(cell))
            for index in watch:  # (the first values of the columns that say which is the time)
                if index < len(record) and (value := clean_cell(record[index])):
                    times[index].append(value)
        for index in unnamed:
            if index < len(record) and record[index].strip():
                raise FileProblem(
                    "unnamed_column",
                    f"column {column_letter(index)} has no name in the header but row {row} has a value in it; "
                    "name the column or delete it",
                    line=row,
                )
        if identifier is None and person is not None and person < len(record):
            value = record[person].strip()
            if value:
                if "@" in value:
                    first_email = first_email or row
                else:
                    first_id = first_id or row
    if watch and isinstance(columns, Columns):  # (only an events file watches its time columns)
        refuse_a_day_only_time(columns, times)
    if identifier is None:
        if first_email and first_id and person is not None:
            raise FileProblem(
                "mixed_identifiers",
                f"column {columns.header[person]!r} mixes e-mail addresses (first on row {first_email}) and ids "
                f"(first on row {first_id}); a file uses one kind for everybody. If it is e-mails with typos, "
                "pass --identifier email to get the bad ones as row errors",
            )
        identifier = "email" if first_email else "id"
    return Plan(sniffed, columns, identifier, rows, blank, tuple(tuple(s) for s in samples))


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
    yield from batched(((row, record) for row, record in records if not _blank(record, ours)), chunk_rows,
                       chunk_bytes)


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

