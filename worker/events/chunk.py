"""From a chunk's records to the one outcome its commit writes. Pure: no I/O.

Two steps around the one read the worker makes (which people exist):
:func:`validate` then :func:`assemble`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import struct
from datetime import UTC
from typing import Any

import orjson

from worker.events import rules
from worker.events.plain import validate_chunk
from worker.events.rows import Event, RowOutcome, content_digest, dedupe_key, id_field, key_of
from worker.problems import CHUNK_FAILED, Problem, failed_rows, problem_row
from worker.spec import ImportSpec
from worker.timestamps import iso, zone

#: The dedupe key of an event that has none (it cannot be named, so it is never a duplicate).
NO_KEY = b"\0" * 10
#: What the import remembers of an id it has not seen (an :func:`id_value` of none).
NO_MEMORY = b"\0" * 12
#: One record of :attr:`ChunkOutcome.ids`, for each event id the chunk uses first: the event's place among
#: the chunk's events (1-based, as Lua counts; 3 bytes) and its mode (a byte: :data:`TOLD`, :data:`NAMED`),
#: as one little-endian number; the value its dedupe mark takes (its expiry hour in 7 digits, the import's
#: tag (:func:`import_tag`) and the event's :func:`id_value`: cut out whole, the script makes no string an
#: event); the id's field in the import's memory (:func:`worker.events.rows.id_field`); what the chunk was
#: told the import remembers of it (:data:`NO_MEMORY`: nothing).
ID_RECORD = struct.Struct("<I11s12s8s12s")
#: A record's mode bits: the chunk was told the import remembers the id (from an earlier commit's answer);
#: a later event of the chunk uses the id for a different event (its warning names this one's row).
TOLD, NAMED = 1, 2


@dataclasses.dataclass(slots=True)
class ChunkOutcome:
    """Everything a chunk commits, already encoded for the commit script."""

    errors: list[bytes]
    warnings: list[bytes]
    #: (person key, value as written) of people to create when missing, each key once
    create: list[tuple[str, str]]
    #: The valid events, packed as commit.lua takes them: their 10-byte dedupe keys (ten zero bytes
    #: for none), their JSON joined by "\n", and one trigger outcome each. Packed as they are made:
    #: a tuple and a bytes object kept per event doubled assemble's time wherever the collector runs
    #: often (the pure core of bench/suite.py); neutral in a worker, whose collector is tuned.
    keys: bytearray = dataclasses.field(default_factory=bytearray)
    bodies: bytearray = dataclasses.field(default_factory=bytearray)
    outcomes: list[bytes | str] = dataclasses.field(default_factory=list)
    #: where each event's JSON ends in ``bodies`` (commit.lua cuts the duplicates out by these)
    ends: list[int] = dataclasses.field(default_factory=list)
    #: one :data:`ID_RECORD` for each event id the chunk uses first (commit.lua decides from the ids'
    #: dedupe marks whether the import used them before, and refuses a chunk told otherwise)
    ids: bytearray = dataclasses.field(default_factory=bytearray)
    #: (dedupe key, anonymous id, JSON) of the Segment events held for their anonymous id
    #: (:mod:`worker.segment.anonymous`)
    anonymous: list[tuple[bytes, str, bytes]] = dataclasses.field(default_factory=list)

    @property
    def remember(self) -> list[tuple[bytes, bytes]]:
        """(id field, id_value) of the event ids this chunk uses first in its import, as far as it was told."""
        return [(field, value) for place, _, value, field, _ in ID_RECORD.iter_unpack(self.ids)
                if not place >> 24 & TOLD]


def validate(spec: ImportSpec, rows: list[list[str]], numbers: list[int], now: float,
             clock_skew_s: float) -> RowOutcome:
    """Validate a chunk's records under the import's options."""
    tz = zone(spec.timezone) or UTC
    return validate_chunk(rows, numbers, spec.events, identifier=spec.identifier, tz=tz, now=now,
                         formats=spec.date_formats, dst=spec.dst,
                         clock_skew_s=clock_skew_s)


def expiry_hour(at_ms: int, window_s: int) -> int:
    """The hour (since the epoch) until which a dedupe mark written at ``at_ms`` lasts: the window rounded up."""
    return at_ms // 3_600_000 - (-window_s // 3600)


def import_tag(import_id: str) -> bytes:
    """4 bytes naming an import in the dedupe marks it writes (two running imports share one once in 2^32)."""
    return hashlib.blake2b(import_id.encode(), digest_size=4).digest()


def id_value(content: bytes, row: int) -> bytes:
    """What the import remembers of an event id: its event's content digest and its row (12 bytes)."""
    return content + row.to_bytes(4, "big")


def id_row(value: bytes) -> int:
    """The row of an :func:`id_value`."""
    return int.from_bytes(value[8:12], "big")


def told(seen_ids: dict[bytes, bytes], memory: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """``seen_ids`` (for :func:`assemble`) with what a refused commit told of the import's memory of some ids
    (:data:`NO_MEMORY`: nothing)."""
    out = dict(seen_ids)
    for field, value in memory.items():
        if value == NO_MEMORY:
            out.pop(field, None)
        else:
            out[field] = value
    return out


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

    ``seen_ids``: the import's memory of event ids committed by earlier chunks (id field -> content
    digest + row), as a refused commit told it (:func:`told`). An event id used again with different
    content gets an ``event_id_reused`` warning naming the row where it was first seen (the event is a
    duplicate by its id); each id the chunk uses first gets a record in :attr:`ChunkOutcome.ids`, from
    which the commit records it (in its dedupe mark) and checks what the chunk was told.

    ``id_owners``: in a Vero file matched by e-mail, the cio_id of each person the directory knows by
    a value of its ``id`` column (a property): a row whose id is another person's than its e-mail's
    gets an ``id_email_mismatch`` warning (:func:`id_mismatch`).

    Its outcome equals tests/reference/events_core.py's, byte for byte (the differential test):
    this loop runs for every event of every file, so the usual event (passive, an id or a time)
    is encoded here inline, its digests made once each (by :mod:`worker.events.rows`'s functions, the
    one place each formula is written: calling them costs about 0.1 us an event, within bench/core_steps.py's noise).
    """
    errors = [problem_row(r, c, p) for r, c, p in validated.errors]
    warned: dict[int, tuple[list[str], list[Problem]]] = {r: (c, list(p)) for r, c, p in validated.warnings}
    create: list[tuple[str, str]] = []
    out = ChunkOutcome(errors, [], create)
    packed_keys, bodies, outcomes, ends, ids = out.keys, out.bodies, out.outcomes, out.ends, out.ids
    kind = spec.identifier
    columns = spec.events
    header = columns.header
    person_label = header[columns.person]
    id_label = header[columns.event_id] if columns.event_id is not None else None
    cells_of: dict[int, list[str]] | None = None  # built only when a row needs its original cells
    seen = dict(seen_ids or {})
    firsts: dict[bytes, int] = {}  # id field -> where its record starts in ids
    # (the commit writes its marks until the same hour: worker/store/events.py)
    head, record = b"%07d" % expiry_hour(round(now * 1000), spec.dedupe_window_s) + import_tag(spec.import_id), \
        ID_RECORD.pack
    creating: set[str] = set()
    passive, create_people, import_id = not spec.trigger, spec.create_people, spec.import_id
    dumps = orjson.dumps
    passive_outcome: bytes | str = rules.PASSIVE
    id_key = columns.id_property_key if id_owners else None

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
        key_of_person = event.person_key
        found = existing.get(key_of_person)
        if found is None:
            if not create_people:
                refuse(event, "person_not_found",
                       f"no person with {kind} {event.person!r}: import people first, or use --create-people")
                continue
            if key_of_person not in creating:
                creating.add(key_of_person)
                create.append((key_of_person, event.person))
        elif "," in found:
            refuse(event, "ambiguous_email",
                   f"{found.count(',') + 1} people have the e-mail {event.person!r}; identify them by id")
            continue
        if id_key is not None and id_owners is not None:
            mismatch = id_mismatch(spec, event, found, id_owners, id_key)
            if mismatch is not None:
                warn(event.row, mismatch)
        event_id, ts = event.event_id, event.ts
        ts_ms = None if ts is None else round(ts * 1000)
        if event_id is not None:
            field = id_field(event_id)
            content = content_digest(key_of_person, event.name, ts_ms, event.data)
            first = seen.get(field)
            rec_at = firsts.get(field)
            if rec_at is None:  # the chunk's first use of the id: a record, what it was told or not
                firsts[field] = len(ids)
                value = id_value(content, event.row)
                ids += record(len(outcomes) + 1 | (first is not None) << 24, head, value, field, first or NO_MEMORY)
                if first is None:
                    seen[field] = value
            elif ids[rec_at + 15:rec_at + 23] != content:  # (a later use for another event than the chunk's first)
                ids[rec_at + 3] |= NAMED
            if first is not None and first[:8] != content:
                warn(event.row, Problem(event.row, id_label, "event_id_reused",
                                        f"event id {event_id!r} was first used on row {id_row(first)} for a "
                                        "different event (person, name, time or properties): this row is a "
                                        "duplicate of it and is not imported; give each event its own id"))
        # encode_event's event, inline
        at = ts if ts is not None else now
        body: dict[str, Any] = {"import": import_id, "row": event.row, "name": event.name,
                                "person": {kind: event.person}, "timestamp": int(at) if at == int(at) else at,
                                "data": event.data}
        if event_id is not None:
            body["id"] = event_id
        key = key_of(event.dedupe_as or key_of_person, event.name, ts_ms, event.data, event_id) or NO_KEY
        encoded = dumps(body)
        if passive:
            outcome = passive_outcome
        else:
            outcome, loosely = trigger_outcome(spec, event, campaigns, now, clock_skew_s)
            if loosely and spec.dry_run:
                warn(event.row, Problem(event.row, header[columns.name], "loose_match",
                                        f"{event.name!r} triggers " + ", ".join(f"{c.name!r} (on {c.event!r})"
                                                                               for c in loosely)
                                        + " by a loose match (case, spaces and underscores aside)"))
        if outcomes:
            bodies += b"\n"
        packed_keys += key
        bodies += encoded  # (the bytes object dies here: see ChunkOutcome)
        ends.append(len(bodies))
        outcomes.append(outcome)
    out.warnings = [problem_row(r, c, p) for r, (c, p) in sorted(warned.items())]
    return out


def id_mismatch(spec: ImportSpec, event: Event, found: str | None, id_owners: dict[str, str],
                id_key: str) -> Problem | None:
    """The ``id_email_mismatch`` warning of an event whose ``id`` property is the id of a person other
    than the one its e-mail names (``found``; None: nobody yet, the commit creates them), or None."""
    value = event.data.get(id_key)
    owner = id_owners.get(value) if value else None
    if owner is None or owner == found:
        return None
    whose = f"person {found}" if found else "no one yet (a new person is created for it)"
    columns = spec.events
    assert columns.id_property is not None  # (id_owners is given only for a file with an id property)
    return Problem(event.row, columns.header[columns.id_property], "id_email_mismatch",
                   f"id {value!r} is person {owner}'s, but e-mail {event.person!r} names {whose}: the event is "
                   "imported as the e-mail's person's, its id a property (--identifier id to match by id)")


def encode_event(spec: ImportSpec, event: Event, campaigns: rules.CampaignIndex,
                 now: float, clock_skew_s: float) -> tuple[bytes, bytes, bytes | str, list[rules.Campaign]]:
    """(dedupe key or NO_KEY, event JSON, trigger outcome, campaigns matched loosely) of one valid event."""
    ts = event.ts if event.ts is not None else now
    body: dict[str, Any] = {"import": spec.import_id, "row": event.row, "name": event.name,
                            "person": {spec.identifier: event.person},
                            "timestamp": int(ts) if ts == int(ts) else ts, "data": event.data}
    if event.event_id is not None:
        body["id"] = event.event_id
    if not spec.trigger:  # the usual import: skip the rules' call for every row
        return dedupe_key(event) or NO_KEY, orjson.dumps(body), rules.PASSIVE, []
    outcome, loosely = trigger_outcome(spec, event, campaigns, now, clock_skew_s)
    return dedupe_key(event) or NO_KEY, orjson.dumps(body), outcome, loosely


def trigger_outcome(spec: ImportSpec, event: Event, campaigns: rules.CampaignIndex, now: float,
                    clock_skew_s: float) -> tuple[bytes | str, list[rules.Campaign]]:
    """(trigger outcome, campaigns matched loosely) of one valid event of a triggering import.

    The outcome is a counter name (``rules.OUTCOMES``), or the event's decisions: a JSON array of
    ``[kind, due_ms, message]`` actions (``due_ms`` 0 for none), the message an object, the actions
    separated by ",\n" (JSON's whitespace; no JSON text orjson writes holds a raw newline), so the commit
    script cuts each message out where it lies (lib.lua's take_outcome) instead of decoding JSON, and the
    database's sink reads them from the outbox with the one parse of its ``decisions`` field (entries
    written before this form held each message as a JSON string inside the array: the sink reads both).
    """
    matched, loosely = campaigns.match(event.name)
    decision = rules.decide(
        trigger=spec.trigger, event_time=event.ts, now=now,
        campaigns=matched, window_s=spec.trigger_window_s,
        clock_skew_s=clock_skew_s,
    )
    actions = decision.actions
    if not actions and matched and decision.outcome in (rules.OUTSIDE_WINDOW, rules.FUTURE):
        # what the event would have triggered, kept as decisions in the database (counted once)
        actions = tuple(rules.Action(c.name, decision.outcome, None) for c in matched)  # type: ignore[arg-type]  # a Decision's outcome is a campaign action when it has campaigns
    if not actions:
        return decision.outcome, loosely
    dumps, import_id, row = orjson.dumps, spec.import_id, event.row
    person = {spec.identifier: event.person}
    event_time = iso(event.ts if event.ts is not None else now)
    return b"[" + b",\n".join([dumps([a.kind, round(a.at * 1000) if a.at is not None else 0, {
        # Stable whatever happens to the commit (a chunk committed again after a Redis crash):
        # consumers of the deliveries stream dedupe on it.
        "delivery_id": f"{import_id}:{row}:{a.campaign}", "campaign": a.campaign,
        "event": event.name, "person": person, "import": import_id,
        "row": row, "event_time": event_time,
        "due": None if a.at is None else _iso_of_now(now) if a.at == now else iso(a.at),
    }]) for a in actions]) + b"]", loosely


#: The ISO time of the rules' "now" (a message sent now is due then): the same for every event of a chunk.
_iso_of_now = functools.lru_cache(maxsize=2)(iso)


def failed(rows: list[list[str]], numbers: list[int], reason: str, code: str = CHUNK_FAILED) -> ChunkOutcome:
    """The outcome of a chunk that could not be processed: every row an error (``code``)."""
    return ChunkOutcome(failed_rows(rows, numbers, reason, code), [], [])
