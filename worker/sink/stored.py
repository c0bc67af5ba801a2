"""What the results store holds and how it is asked. Pure: no I/O.

Rows are made from outbox entries in worker/sink/batch.py; this module holds what a query gives back.
"""
from __future__ import annotations

import dataclasses

import orjson

from worker.sink.batch import PEOPLE_COLUMNS


@dataclasses.dataclass(frozen=True, slots=True)
class StoredEvent:
    """One stored event."""

    import_id: str
    row: int
    person_kind: str
    person: str
    name: str
    ts_ms: int
    event_id: str | None
    data: dict
    #: the person's stable key (None: stored before events carried it, and no person was found for it)
    cio_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class EventQuery:
    """A question about events: every field narrows it."""

    import_id: str | None = None
    person: str | None = None
    name: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = 100
    #: these people's events (their cio_ids), and events stored without a cio_id under any of ``persons``:
    #: what ``person`` is resolved into
    cio_ids: tuple[str, ...] = ()
    #: any of these identifiers (a person's id, e-mail, cio_id)
    persons: tuple[str, ...] = ()

    def where(self, mark: str = "?") -> tuple[str, list]:
        """The WHERE clause and its arguments (``mark``: the driver's placeholder, ``?`` or ``%s``)."""
        clauses: list[str] = []
        args: list[object] = []
        # (``person`` is resolved by the backend into ``persons``: every identifier of that person)
        person = bool(self.cio_ids or self.persons)
        for column, value in (("import_id", self.import_id), ("name", self.name)):
            if value is not None:
                # With a person, their few events are found by the person's indexes and the import or name
                # checked on each: `column || ''` keeps a planner without statistics (SQLite's) from
                # scanning every event of that name or import by its index instead (130 ms on 1M events).
                clauses.append(f"{column} || '' = {mark}" if person else f"{column} = {mark}")
                args.append(value)
        if self.cio_ids or self.persons:
            # By cio_id; by identifier only the events stored without one (the only ones the person index
            # holds: schema version 6). Identifiers no stored person has or had are tried as cio_ids too.
            cios = self.cio_ids or self.persons
            clause = f"cio_id IN ({', '.join([mark] * len(cios))})"
            if self.persons:
                clause = f"({clause} OR (cio_id IS NULL AND person IN ({', '.join([mark] * len(self.persons))})))"
            clauses.append(clause)
            args.extend((*cios, *self.persons))
        if self.since_ms is not None:
            clauses.append(f"ts_ms >= {mark}")
            args.append(self.since_ms)
        if self.until_ms is not None:
            clauses.append(f"ts_ms < {mark}")
            args.append(self.until_ms)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def person_of(row: tuple) -> dict:
    """A stored ``people`` row as a mapping (attributes and topics decoded)."""
    person = dict(zip(PEOPLE_COLUMNS, row))
    person["attributes"] = orjson.loads(person["attributes"])
    person["topics"] = orjson.loads(person["topics"])
    person["tags"] = orjson.loads(person["tags"]) if person.get("tags") else []
    if person["unsubscribed"] is not None:
        person["unsubscribed"] = bool(person["unsubscribed"])
    return person


def import_stored(state: dict[str, str]) -> bool | None:
    """Whether everything an import wrote is in the results database, from its state in Redis (None: it
    writes nothing there). Its outbox entries are counted as appended and as stored (ack.lua)."""
    entries = int(state.get("outbox_entries", 0) or 0)
    if not entries:
        return None
    return int(state.get("outbox_stored", 0) or 0) >= entries


def dead_letters(state: dict[str, str]) -> int:
    """How many of an import's outbox entries the results database refused (set aside as dead letters)."""
    return max(int(state.get("outbox_dead", 0) or 0), 0)


def settled(state: dict[str, str]) -> bool:
    """Every outbox entry of an import is stored or set aside: no sink has anything of it left to write."""
    entries = int(state.get("outbox_entries", 0) or 0)
    return int(state.get("outbox_stored", 0) or 0) + dead_letters(state) >= entries
