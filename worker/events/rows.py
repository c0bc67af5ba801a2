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

from worker.cells import EMAIL, fit_cells, is_email
from worker.events.dialects import Columns
from worker.problems import Problem
from worker.timestamps import ACCEPTED, parse_time

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
) -> RowOutcome:
    """Validate a chunk of records; every record lands in events or errors, once."""
    outcome = RowOutcome()
    header = columns.header
    width = len(header)
    person_col, name_col, time_col, id_col = columns.person, columns.name, columns.time, columns.event_id
    person_label, name_label = header[person_col], header[name_col]
    reserved = [(i, key) for i, key in columns.properties if key.lower() in RESERVED_EMAIL_DATA]
    from_report = columns.from_report
    future_limit = now + clock_skew_s

    # Locals for the per-row loop: it runs for every row of every file.
    strip, email_match, properties = str.strip, EMAIL.fullmatch, columns.properties
    by_email = identifier == "email"
    add_event = outcome.events.append
    for raw, row in zip(rows, row_numbers):
        cells = list(map(strip, raw))
        problems: list[Problem] = []
        if from_report or len(cells) != width:  # (the usual row skips the call)
            cells, problems = fit_cells(cells, row, width, from_report)

        person = cells[person_col]
        if not person:
            problems.append(Problem(row, person_label, "missing_person", "no person identifier"))
        elif by_email and email_match(person) is None:
            problems.append(Problem(row, person_label, "invalid_email", f"{person!r} is not an e-mail address"))
        name = cells[name_col]
        if not name:
            problems.append(Problem(row, name_label, "missing_event_name", "no event name"))
        ts: float | None = None
        if time_col is not None and cells[time_col]:
            ts = parse_time(cells[time_col], tz)
            if ts is None:
                problems.append(Problem(row, header[time_col], "invalid_time",
                                        f"{cells[time_col]!r} is not a time; use {ACCEPTED}"))
        for index, key in reserved:
            value = cells[index]
            if value and not is_email(value):
                problems.append(Problem(row, key, "invalid_email",
                                        f"{key} must be an e-mail address, got {value!r}"))
        if problems:
            outcome.errors.append((row, list(raw), problems))
            continue

        if ts is not None and ts > future_limit:
            outcome.warnings.append((row, list(raw), [Problem(
                row, header[time_col], "future_time",  # type: ignore[index]
                "the event time is in the future: recorded, never triggers a campaign")]))
        event_id = cells[id_col] if id_col is not None and cells[id_col] else None
        data = {key: cells[i] for i, key in properties if cells[i]}
        add_event(Event(row, person, person.lower() if by_email else person, name, ts, event_id, data))
    return outcome


def dedupe_key(event: Event) -> bytes | None:
    """10-byte digest naming an event for dedupe, or None when it cannot be named.

    An event id names the event by itself. Without one, person + name + time +
    properties do, but only when the time is in the file: an event with no time
    happens when it is processed, so a second import is a second event.
    """
    if event.event_id is not None:
        material = b"id\0" + event.event_id.encode()
    elif event.ts is not None:
        material = orjson.dumps(
            [event.person_key, event.name, round(event.ts * 1000), event.data],
            option=orjson.OPT_SORT_KEYS,
        )
    else:
        return None
    return hashlib.blake2b(material, digest_size=10).digest()
