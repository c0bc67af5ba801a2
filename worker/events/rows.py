"""Row validation for events files: cells in, events and row problems out.

Problems are data (:class:`worker.problems.Problem`): errors keep a row out of
the import; warnings do not.
Pure: no I/O, no clock (``now`` is an argument).
"""
from __future__ import annotations

import dataclasses
import hashlib
from datetime import tzinfo

import orjson

from worker.cells import (
    EMAIL,
    INVISIBLE,
    INVISIBLE_IN_TEXT,
    SCIENTIFIC,
    clean_cells,
    composed,
    email_problem,
    fit_cells,
    is_email,
    mangled_problem,
    visible,
)
from worker.events.dialects import Columns
from worker.problems import Problem
from worker.timestamps import parse_iso, parse_time, time_problem

#: Event data a vendor reads as e-mail addresses (Customer.io's reserved data).
RESERVED_EMAIL_DATA = ("recipient", "from_address", "reply_to")
@dataclasses.dataclass(slots=True)
class Event:
    """A valid event, ready to be looked up, deduped and committed."""

    row: int
    person: str
    #: the person's identifier as the directory is keyed (e-mails lower-cased)
    person_key: str
    name: str
    #: Unix seconds; None = the time the chunk is processed
    ts: float | None
    event_id: str | None
    data: dict[str, str]
    #: the person key its dedupe key is made with, when not ``person_key`` (an anonymous Segment event
    #: that is a person's once its anonymous id is tied keeps the key it was held, or would be held, under)
    dedupe_as: str | None = None


@dataclasses.dataclass(slots=True)
class RowOutcome:
    """What validation made of one chunk."""

    events: list[Event] = dataclasses.field(default_factory=list)
    #: (row, original cells, problems): rows that will not be imported
    errors: list[tuple[int, list[str], list[Problem]]] = dataclasses.field(default_factory=list)
    #: (row, original cells, problems): rows imported with a warning
    warnings: list[tuple[int, list[str], list[Problem]]] = dataclasses.field(default_factory=list)


def person_key(value: str, identifier: str) -> str:
    """The directory key of a person identifier: e-mails are case-insensitive."""
    return value.lower() if identifier == "email" else value


def validate_rows(
    rows: list[list[str]],
    row_numbers: list[int],
    columns: Columns,
    *,
    identifier: str,
    tz: tzinfo,
    now: float,
    clock_skew_s: float,
    formats: tuple[str, ...] = (),
    dst: str | None = None,
) -> RowOutcome:
    """Validate a chunk of records; every record lands in events or errors, once.

    Errors: no person, an address that is not one (a ``mailto:`` link included), no event name,
    a time that is not one (:func:`worker.timestamps.time_problem` says what it looks like) or a
    local time the clocks skip, or repeat without ``dst`` to choose its instant, an
    id Excel turned into scientific notation (``1.23457E+15``: its digits are gone), reserved data
    that is not an address. Warnings: invisible characters removed from the person, the event's
    name or its id; any of those three written decomposed (NFD, as macOS writes accents) and read
    composed (NFC), the form they are compared in; a time in the future.
    """
    outcome = RowOutcome()
    header = columns.header
    width = len(header)
    person_col, name_col, time_col, id_col = columns.person, columns.name, columns.time, columns.event_id
    person_label, name_label = header[person_col], header[name_col]
    id_label = header[id_col] if id_col is not None else ""
    reserved = [(i, key) for i, key in columns.properties if key.lower() in RESERVED_EMAIL_DATA]
    future_limit = now + clock_skew_s

    # Locals for the per-row loop: it runs for every row of every file.
    email_match, invisible, scientific, properties = EMAIL.fullmatch, INVISIBLE.search, SCIENTIFIC.fullmatch, \
        columns.properties
    by_email = identifier == "email"
    iso_first = not formats
    add_event = outcome.events.append
    for raw, row in zip(rows, row_numbers):
        cells = clean_cells(raw)
        problems: list[Problem] = []
        notes: list[Problem] = []
        if len(cells) != width:  # (the usual row skips the call)
            cells, problems = fit_cells(cells, row, width)

        person = cells[person_col]
        name = cells[name_col]
        event_id = cells[id_col] if id_col is not None else ""
        if invisible(person) or invisible(name) or invisible(event_id):
            person = visible(person, person_label, row, notes)
            name = visible(name, name_label, row, notes, INVISIBLE_IN_TEXT)
            event_id = visible(event_id, id_label, row, notes)
        if not (person.isascii() and name.isascii() and event_id.isascii()):  # (the usual row skips the calls)
            person = composed(person, person_label, row, notes)
            name = composed(name, name_label, row, notes)
            event_id = composed(event_id, id_label, row, notes)
        if not person:
            problems.append(Problem(row, person_label, "missing_person", "no person identifier"))
        elif by_email:
            if email_match(person) is None:
                problems.append(Problem(row, person_label, "invalid_email", email_problem(person)))
        elif scientific(person):
            problems.append(Problem(row, person_label, "mangled_number", mangled_problem(person)))
        if not name:
            problems.append(Problem(row, name_label, "missing_event_name", "no event name"))
        if event_id and scientific(event_id):
            problems.append(Problem(row, id_label, "mangled_number", mangled_problem(event_id)))
        ts: float | None = None
        if time_col is not None and cells[time_col]:
            text = cells[time_col]
            # parse_time's usual case without its number checks (a "-" after four digits is no number)
            ts = parse_iso(text, tz, dst) if iso_first and text[4:5] == "-" and text[:4].isdigit() \
                else parse_time(text, tz, formats, dst)
            if ts is None:
                problems.append(Problem(row, header[time_col], *time_problem(cells[time_col], tz, formats, dst)))
        for index, key in reserved:
            value = cells[index]
            if value and not is_email(value):
                problems.append(Problem(row, key, "invalid_email",
                                        email_problem(value, f"{key} must be an e-mail address, got ")))
        if problems:
            outcome.errors.append((row, list(raw), problems))
            continue

        if ts is not None and ts > future_limit:
            notes.append(Problem(row, header[time_col], "future_time",  # type: ignore[index]  # a future time is found only in a file with a time column
                                 "the event time is in the future: recorded, never triggers a campaign"))
        if notes:
            outcome.warnings.append((row, list(raw), notes))
        data = {key: cells[i] for i, key in properties if cells[i]}
        add_event(Event(row, person, person.lower() if by_email else person, name, ts, event_id or None, data))
    return outcome


def dedupe_key(event: Event) -> bytes | None:
    """10-byte digest naming an event for dedupe, or None when it cannot be named.

    An event id names the event by itself. Without one, person + name + time +
    properties do, but only when the time is in the file: an event with no time
    happens when it is processed, so a second import is a second event.
    """
    return key_of(event.dedupe_as or event.person_key, event.name,
                  None if event.ts is None else round(event.ts * 1000), event.data, event.event_id)


def key_of(person_key: str, name: str, ts_ms: int | None, data: dict[str, str], event_id: str | None) -> bytes | None:
    """:func:`dedupe_key` from an event's parts (``ts_ms``: the time in the file, in ms; None when the
    file gave none), as a stored event has them (undo recomputes the marks of the events it takes back)."""
    if event_id is not None:
        return _blake2b(b"id\0" + event_id.encode(), digest_size=10).digest()
    if ts_ms is not None:
        return _blake2b(_dumps([person_key, name, ts_ms, data], option=_SORTED), digest_size=10).digest()
    return None


def content_digest(person_key: str, name: str, ts_ms: int | None, data: dict[str, str]) -> bytes:
    """8 bytes that differ when two events differ in person, name, time (None: none in the file) or
    properties: what the import remembers of an event id, to tell an id used again for another event."""
    return _blake2b(_dumps([person_key, name, ts_ms, data], option=_SORTED), digest_size=8).digest()


def id_field(event_id: str) -> bytes:
    """8-byte name of an event id in the import's memory of the ids it has seen."""
    return _blake2b(b"id\0" + event_id.encode(), digest_size=8).digest()


# Bound once: chunk.assemble calls the functions above for every event of every file.
_blake2b, _dumps, _SORTED = hashlib.blake2b, orjson.dumps, orjson.OPT_SORT_KEYS
