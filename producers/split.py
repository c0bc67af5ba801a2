"""Scanning a whole file for file-level problems, then streaming it in chunks.

``scan`` reads every record once, holding only counters, so that an import
either fails before anything is queued or is known to be well formed CSV.
``chunks`` then yields lists of records (records, not lines: quoted fields may
hold newlines), each with the file row numbers of its records.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from worker.cells import column_letter
from worker.errors import FileProblem
from worker.events.dialects import VERO, Columns, plan_columns
from worker.people.columns import PeopleColumns, plan_people_columns

from .source import Records, Sniffed, Source, check_bytes, sniff


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


def _blank(record: list[str]) -> bool:
    # A plain loop: called for every record twice, and nearly every record's first cell has data.
    for cell in record:
        if cell and not cell.isspace():
            return False
    return True


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
) -> Plan:
    """Read the whole file once and return its plan, or raise FileProblem.

    ``people`` (the keyword arguments of :func:`plan_people_columns`: mapping,
    skip, data_to_process) makes it a people file. Falls back to cp1252 when
    UTF-8 was only assumed and a later byte is not UTF-8.
    """
    sniffed = sniff(source, encoding=encoding, delimiter=delimiter)
    check_bytes(source)
    columns_of = (lambda header: plan_people_columns(header, identifier=identifier, max_columns=max_columns,
                                                     **people)) if people is not None else None
    try:
        return _scan(source, sniffed, dialect, identifier, max_columns, columns_of)
    except FileProblem as problem:
        if problem.code != "bad_encoding" or sniffed.encoding != "utf-8" or encoding:
            raise
        fallback = dataclasses.replace(
            sniffed, encoding="cp1252", encoding_reason=f"cp1252 fallback: not valid UTF-8 (line {problem.line})"
        )
        return _scan(source, fallback, dialect, identifier, max_columns, columns_of)


def _scan(source: Source, sniffed: Sniffed, dialect: str | None, identifier: str | None,
          max_columns: int, columns_of) -> Plan:
    records = iter(Records(source, sniffed))
    header = _header(records)
    if header is None:
        raise FileProblem("empty_file", f"{source.name} has no header row")
    person: int | None = None
    columns: Columns | PeopleColumns
    if columns_of is not None:
        columns = columns_of(header)
        identifier = columns.identifier
    else:
        columns = plan_columns(header, dialect=dialect, max_columns=max_columns)
        if identifier is None and columns.dialect == VERO:
            identifier = "email"
        if identifier not in (None, "id", "email"):
            raise FileProblem("bad_identifier", f"--identifier must be id or email, not {identifier!r}")
        person = columns.person
    unnamed = columns.unnamed
    samples: list[list[str]] = [[] for _ in columns.header]
    first_email = first_id = None
    rows = blank = 0
    for row, record in records:
        if _blank(record):
            blank += 1
            continue
        rows += 1
        if rows <= 3:
            for index, cell in enumerate(record[: len(samples)]):
                samples[index].append(cell.strip())
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
    if identifier is None:
        if first_email and first_id:
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


def chunks(source: Source, plan: Plan, chunk_rows: int) -> Iterator[Chunk]:
    """Stream the data records of ``source`` in chunks of ``chunk_rows`` (blank ones skipped)."""
    records = iter(Records(source, plan.sniffed))
    _header(records)
    number = 0
    rows: list[list[str]] = []
    numbers: list[int] = []
    for row, record in records:
        if _blank(record):
            continue
        rows.append(record)
        numbers.append(row)
        if len(rows) == chunk_rows:
            yield Chunk(number, rows, numbers)
            number += 1
            rows, numbers = [], []
    if rows:
        yield Chunk(number, rows, numbers)

