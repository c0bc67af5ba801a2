"""What the results store holds and how it is asked. Pure: no I/O.

An event in the events stream (one entry per committed chunk, its events a JSON array) becomes
one row of ``events``: :func:`event_rows` turns an entry into those rows.
"""
from __future__ import annotations

import dataclasses

import orjson


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


@dataclasses.dataclass(frozen=True, slots=True)
class EventQuery:
    """A question about events: every field narrows it."""

    import_id: str | None = None
    person: str | None = None
    name: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = 100

    def where(self, mark: str = "?") -> tuple[str, list]:
        """The WHERE clause and its arguments (``mark``: the driver's placeholder, ``?`` or ``%s``)."""
        clauses, args = [], []
        for column, value in (("import_id", self.import_id), ("person", self.person), ("name", self.name)):
            if value is not None:
                clauses.append(f"{column} = {mark}")
                args.append(value)
        if self.since_ms is not None:
            clauses.append(f"ts_ms >= {mark}")
            args.append(self.since_ms)
        if self.until_ms is not None:
            clauses.append(f"ts_ms < {mark}")
            args.append(self.until_ms)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def event_rows(entry: dict[bytes, bytes]) -> list[tuple]:
    """The rows of one events-stream entry (fields import, chunk, count, events)."""
    rows = []
    for event in orjson.loads(entry[b"events"]):
        [(kind, person)] = event["person"].items()
        person = person.lower() if kind == "email" else person  # e-mails are case-insensitive: stored as keyed
        rows.append((event["import"], event["row"], kind, person, event["name"], round(event["timestamp"] * 1000),
                     event.get("id"), orjson.dumps(event["data"]).decode()))
    return rows
