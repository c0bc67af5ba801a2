"""An import's options: what the producer decided and every worker obeys."""
from __future__ import annotations

import dataclasses
import secrets
import time

import orjson

from worker.events.dialects import Columns
from worker.people.columns import PeopleColumns


def new_import_id() -> str:
    """A short, sortable, unguessable id: creation time in ms (hex) + 5 random bytes."""
    return f"{int(time.time() * 1000):x}{secrets.token_hex(5)}"


def import_id_ms(import_id: str) -> int | None:
    """When an id of :func:`new_import_id` was made (ms), or None for an id not of that form."""
    head = import_id[:-10]
    try:
        return int(head, 16) if 8 <= len(head) <= 13 and len(import_id) - len(head) == 10 else None
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class ImportSpec:
    """Options of one import, stored once in Redis and read by every chunk task."""

    import_id: str
    #: an events file's columns, or a people file's (``kind`` says which)
    columns: Columns | PeopleColumns
    #: events: "email" or "id", what the person column holds; people: "id", "email" or "cio_id"
    identifier: str
    source: str = "-"
    #: "events" or "people"
    kind: str = "events"
    trigger: bool = False
    #: seconds; None = no window (Vero)
    trigger_window_s: int | None = 72 * 3600
    timezone: str = "UTC"
    create_people: bool = False
    dry_run: bool = False
    dedupe_window_s: int = 30 * 86_400
    encoding: str = "utf-8"
    delimiter: str = ","
    #: people: all | only_new | only_existing
    data_to_process: str = "all"
    #: people: an empty cell leaves the attribute as it is ("ignore") or removes it ("clear")
    empty_cells: str = "ignore"
    #: the workspace identifies people by id only (e-mails may be shared), fixed when the import is queued
    id_only: bool = False
    #: ``--date-format`` strptime patterns (or "excel") read besides ISO 8601 and Unix times
    date_formats: tuple[str, ...] = ()
    #: ``--dst``: a local time the clocks repeat is its "earlier" or "later" instant; None refuses it
    dst: str | None = None

    @property
    def events(self) -> Columns:
        """The columns of an events file (an events or Segment import); raises TypeError for a people file."""
        if not isinstance(self.columns, Columns):
            raise TypeError(f"import {self.import_id} is a people import: its columns are no events columns")
        return self.columns

    @property
    def people(self) -> PeopleColumns:
        """The columns of a people file; raises TypeError for an events file."""
        if not isinstance(self.columns, PeopleColumns):
            raise TypeError(f"import {self.import_id} is an events import: its columns are no people columns")
        return self.columns

    def to_json(self) -> bytes:
        """orjson bytes, for the import hash."""
        data = dataclasses.asdict(self)
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> ImportSpec:
        """Inverse of :meth:`to_json`."""
        data = orjson.loads(raw)
        kind = PeopleColumns if data.get("kind") == "people" else Columns
        data["columns"] = kind.from_dict(data["columns"])
        data["date_formats"] = tuple(data.get("date_formats", ()))
        return cls(**data)
