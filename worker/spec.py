"""An import's options: what the producer decided and every worker obeys."""
from __future__ import annotations

import dataclasses
import secrets
import time

import orjson

from .dialects import Columns


def new_import_id() -> str:
    """A short, sortable, unguessable id: creation time in ms (hex) + 5 random bytes."""
    return f"{int(time.time() * 1000):x}{secrets.token_hex(5)}"


@dataclasses.dataclass(frozen=True, slots=True)
class ImportSpec:
    """Options of one import, stored once in Redis and read by every chunk task."""

    import_id: str
    columns: Columns
    #: "email" or "id": what the person column holds, for the whole file
    identifier: str
    source: str = "-"
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

    def to_json(self) -> bytes:
        """orjson bytes, for the import hash."""
        data = dataclasses.asdict(self)
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> ImportSpec:
        """Inverse of :meth:`to_json`."""
        data = orjson.loads(raw)
        data["columns"] = Columns.from_dict(data["columns"])
        return cls(**data)
