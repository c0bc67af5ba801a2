"""The events chunk core as it was before the performance work: the reference the production core must equal.

A frozen copy of ``worker.events.rows.validate_rows`` / ``dedupe_key`` and ``worker.events.chunk``'s
``assemble`` / ``encode_event`` / id memory helpers, one plain loop a row, as they stood when the
faster core replaced them. tests/unit/test_differential.py runs both over generated and hostile
files and requires the same outcome, row for row and byte for byte. Do not optimize this file: its
worth is that it stays the simple version.
"""
from __future__ import annotations

import hashlib
import math
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
from worker.events import rules
from worker.events.chunk import ID_RECORD, NAMED, NO_KEY, NO_MEMORY, TOLD, ChunkOutcome
from worker.events.dialects import Columns
from worker.events.rows import RESERVED_EMAIL_DATA, Event, RowOutcome
from worker.problems import Problem, problem_row
from worker.spec import ImportSpec
from worker.timestamps import iso, parse_time, time_problem


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
            ts = parse_time(cells[time_col], tz, formats, dst)
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
            notes.append(Problem(row, header[time_col], "future_time",
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
        material = b"id\0" + event_id.encode()
    elif ts_ms is not None:
        material = orjson.dumps([person_key, name, ts_ms, data], option=orjson.OPT_SORT_KEYS)
    else:
        return None
    return hashlib.blake2b(material, digest_size=10).digest()


def id_field(event_id: str) -> bytes:
    """8-byte name of an event id in the import's memory of the ids it has seen."""
    return hashlib.blake2b(b"id\0" + event_id.encode(), digest_size=8).digest()


def id_value(content: bytes, row: int) -> bytes:
    """What the import remembers of an event id: its event's content digest and its row (12 bytes)."""
    return content + row.to_bytes(4, "big")


def id_row(value: bytes) -> int:
    """The row of an :func:`id_value`."""
    return int.from_bytes(value[8:12], "big")


def content_digest(event: Event) -> bytes:
    """8 bytes that differ when two events differ in person, name, time or properties."""
    material = orjson.dumps([event.person_key, event.name, None if event.ts is None else round(event.ts * 1000),
                             event.data], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(material, digest_size=8).digest()


def assemble(
    spec: ImportSpec,
    validated: RowOutcome,
    rows: list[list[str]],
    numbers: list[int],
    existing: dict[str, str],
    campaigns: rules.CampaignIndex,
    now: float,
    clock_skew_s: float,
    seen_ids: dict[bytes, bytes] | None = None,
    id_owners: dict[str, str] | None = None,
) -> ChunkOutcome:
    """Apply people lookup (``existing``: person key -> cio_id) and trigger rules; encode it all for the commit.

    ``id_owners``: id -> cio_id of the people the directory knows by the values of a Vero file's ``id``
    property (people matched by e-mail): an id that is another person's is an ``id_email_mismatch`` warning.

    ``seen_ids``: the import's memory of event ids committed by earlier chunks (id field -> content
    digest + row). An event id used again with different content gets an ``event_id_reused``
    warning naming the row where it was first seen (the event is a duplicate by its id); the ids
    this chunk uses first get a record each in :attr:`ChunkOutcome.ids` (:data:`ID_RECORD`), for the commit
    to record and check.
    """
    errors = [problem_row(r, c, p) for r, c, p in validated.errors]
    warned: dict[int, tuple[list[str], list[Problem]]] = {r: (c, list(p)) for r, c, p in validated.warnings}
    create: list[tuple[str, str]] = []
    out = ChunkOutcome(errors, [], create)
    packed_keys, bodies, outcomes, ends = out.keys, out.bodies, out.outcomes, out.ends
    kind = spec.identifier
    header = spec.columns.header
    person_label = header[spec.columns.person]
    id_label = header[spec.columns.event_id] if spec.columns.event_id is not None else None
    cells_of: dict[int, list[str]] | None = None  # built only when a row needs its original cells
    seen = dict(seen_ids or {})
    creating: set[str] = set()
    #: id field -> [place among the chunk's events (1-based), id_value, what the chunk was told, used again for
    #: another event]: the chunk's first use of each id, in order
    firsts: dict[bytes, list] = {}

    def cells(row: int) -> list[str]:
        nonlocal cells_of
        if cells_of is None:
            cells_of = dict(zip(numbers, rows))
        return cells_of[row]

    def refuse(event: Event, code: str, message: str) -> None:
        errors.append(problem_row(event.row, cells(event.row), [Problem(event.row, person_label, code, message)]))

    def warn(row: int, problem: Problem) -> None:
        warned.setdefault(row, (cells(row), []))[1].append(problem)

    for event in validated.events:
        found = existing.get(event.person_key)
        if found is not None and "," in found:
            refuse(event, "ambiguous_email",
                   f"{found.count(',') + 1} people have the e-mail {event.person!r}; identify them by id")
            continue
        if found is None:
            if not spec.create_people:
                refuse(event, "person_not_found",
                       f"no person with {kind} {event.person!r}: import people first, or use --create-people")
                continue
            if event.person_key not in creating:
                creating.add(event.person_key)
                create.append((event.person_key, event.person))
        if id_owners and spec.columns.id_property is not None:
            column = spec.columns.header[spec.columns.id_property]
            value = event.data.get(dict(spec.columns.properties)[spec.columns.id_property])
            owner = id_owners.get(value) if value else None
            if owner is not None and owner != found:
                whose = f"person {found}" if found else "no one yet (a new person is created for it)"
                warn(event.row, Problem(event.row, column, "id_email_mismatch",
                                        f"id {value!r} is person {owner}'s, but e-mail {event.person!r} names "
                                        f"{whose}: the event is imported as the e-mail's person's, its id a "
                                        "property (--identifier id to match by id)"))
        if event.event_id is not None:
            field, content = id_field(event.event_id), content_digest(event)
            first = seen.get(field)
            if field not in firsts:
                firsts[field] = [len(outcomes) + 1, id_value(content, event.row), first, False]
            elif firsts[field][1][:8] != content:
                firsts[field][3] = True
            if first is None:
                seen[field] = id_value(content, event.row)
            elif first[:8] != content:
                warn(event.row, Problem(event.row, id_label, "event_id_reused",
                                        f"event id {event.event_id!r} was first used on row {id_row(first)} for a "
                                        "different event (person, name, time or properties): this row is a "
                                        "duplicate of it and is not imported; give each event its own id"))
        key, body, outcome, loosely = encode_event(spec, event, campaigns, now, clock_skew_s)
        if loosely and spec.dry_run:
            warn(event.row, Problem(event.row, header[spec.columns.name], "loose_match",
                                    f"{event.name!r} triggers " + ", ".join(f"{c.name!r} (on {c.event!r})"
                                                                           for c in loosely)
                                    + " by a loose match (case, spaces and underscores aside)"))
        if outcomes:
            bodies += b"\n"
        packed_keys += key
        bodies += body  # (the bytes object dies here: see ChunkOutcome)
        ends.append(len(bodies))
        outcomes.append(outcome)
    out.warnings = [problem_row(r, c, p) for r, (c, p) in sorted(warned.items())]
    # the value of the ids' dedupe marks begins with their expiry hour (the window rounded up) and the import's tag
    hour = round(now * 1000) // 3_600_000 + math.ceil(spec.dedupe_window_s / 3600)
    head = b"%07d" % hour + hashlib.blake2b(spec.import_id.encode(), digest_size=4).digest()
    for field, (place, value, told, named) in firsts.items():
        mode = (TOLD if told is not None else 0) | (NAMED if named else 0)
        out.ids += ID_RECORD.pack(place | mode << 24, head, value, field, told or NO_MEMORY)
    return out


def encode_event(spec: ImportSpec, event: Event, campaigns: rules.CampaignIndex,
                 now: float, clock_skew_s: float) -> tuple[bytes, bytes, bytes | str, list[rules.Campaign]]:
    """(dedupe key or NO_KEY, event JSON, trigger outcome, campaigns matched loosely) of one valid event."""
    ts = event.ts if event.ts is not None else now
    person = {spec.identifier: event.person}
    body: dict = {"import": spec.import_id, "row": event.row, "name": event.name, "person": person,
                  "timestamp": int(ts) if ts == int(ts) else ts, "data": event.data}
    if event.event_id is not None:
        body["id"] = event.event_id
    if not spec.trigger:  # the usual import: skip the rules' call for every row
        return dedupe_key(event) or NO_KEY, orjson.dumps(body), rules.PASSIVE, []
    matched, loosely = campaigns.match(event.name)
    decision = rules.decide(
        trigger=spec.trigger, event_time=event.ts, now=now,
        campaigns=matched, window_s=spec.trigger_window_s,
        clock_skew_s=clock_skew_s,
    )
    actions = decision.actions
    if not actions and matched and decision.outcome in (rules.OUTSIDE_WINDOW, rules.FUTURE):
        # what the event would have triggered, kept as decisions in the database (counted once)
        actions = tuple(rules.Action(c.name, decision.outcome, None) for c in matched)
    if actions:
        # one action a line: the commit script cuts each message out where it lies
        outcome: bytes | str = b"[" + b",\n".join(
            orjson.dumps([a.kind, round(a.at * 1000) if a.at is not None else 0, {
                # Stable whatever happens to the commit (a chunk committed again after a Redis crash):
                # consumers of the deliveries stream dedupe on it.
                "delivery_id": f"{spec.import_id}:{event.row}:{a.campaign}", "campaign": a.campaign,
                "event": event.name, "person": person, "import": spec.import_id,
                "row": event.row, "event_time": iso(ts), "due": iso(a.at) if a.at is not None else None,
            }])
            for a in actions
        ) + b"]"
    else:
        outcome = decision.outcome
    return dedupe_key(event) or NO_KEY, orjson.dumps(body), outcome, loosely


