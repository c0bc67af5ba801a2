"""The two events dialects, and mapping a header row to column roles.

Vero: ``email, event_name|name, time|timestamp|date, id|event_id, <properties>``.
Customer.io: ``_cio_name, _cio_customer_id, _cio_timestamp, _cio_id, <properties>``.
Matching is on the trimmed, lower-cased header cell; property keys keep the
header as written (trimmed). Pure: no I/O.
"""
from __future__ import annotations

import dataclasses
import re

from worker.cells import REPORT_COLUMNS, column_letter, header_names, is_report_file
from worker.errors import FileProblem

VERO = "vero"
CUSTOMERIO = "customerio"
DIALECTS = (VERO, CUSTOMERIO)

# role -> accepted header names, per dialect
ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    VERO: {
        "person": ("email",),
        "name": ("event_name", "name"),
        "time": ("time", "timestamp", "date"),
        "event_id": ("id", "event_id"),
    },
    CUSTOMERIO: {
        "person": ("_cio_customer_id",),
        "name": ("_cio_name",),
        "time": ("_cio_timestamp",),
        "event_id": ("_cio_id",),
    },
}
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclasses.dataclass(frozen=True, slots=True)
class Columns:
    """What each column of an events file means."""

    dialect: str
    header: tuple[str, ...]
    person: int
    name: int
    time: int | None
    event_id: int | None
    #: (column index, property key) for every other named column
    properties: tuple[tuple[int, str], ...]
    #: ``_row``/``_errors``/``_warnings`` columns: not imported
    dropped: tuple[int, ...]
    #: columns with an empty header cell: must be empty throughout
    unnamed: tuple[int, ...]
    #: column-level warnings for the user (names that are awkward in templates)
    notes: tuple[str, ...]

    @property
    def from_report(self) -> bool:
        """True for a file we wrote (an errors or warnings CSV): its cells carry our escapes."""
        return is_report_file(self.header, self.dropped)

    def role_of(self, index: int) -> str:
        """The role name of column ``index`` ("person", "property", ...)."""
        for role in ("person", "name", "time", "event_id"):
            if getattr(self, role) == index:
                return role
        if index in self.dropped:
            return "dropped"
        if index in self.unnamed:
            return "unnamed"
        return "property"

    def to_dict(self) -> dict:
        """Plain data, for the import's stored spec."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Columns:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        fields["header"] = tuple(fields["header"])
        fields["properties"] = tuple(tuple(p) for p in fields["properties"])
        for name in ("dropped", "unnamed", "notes"):
            fields[name] = tuple(fields[name])
        return cls(**fields)


def detect_dialect(header: list[str]) -> str | None:
    """The dialect a header row is written in, or None if neither."""
    names = {cell.strip().lower() for cell in header}
    if any(name.startswith("_cio_") for name in names):
        return CUSTOMERIO
    if names & {"email", "event_name"} or ("name" in names and "email" in names):
        return VERO
    return None


def plan_columns(header: list[str], *, dialect: str | None = None, max_columns: int = 100) -> Columns:
    """Map a header row to column roles; raise FileProblem when it cannot be imported."""
    cells, seen = header_names(header, max_columns)
    chosen = dialect or detect_dialect(list(cells))
    if chosen is None:
        raise FileProblem(
            "no_person_column",
            "no person column: the header needs `email` (Vero) or `_cio_customer_id` (Customer.io); "
            f"it has: {', '.join(cells) or '(nothing)'}",
        )
    if chosen not in ROLES:
        raise FileProblem("unknown_dialect", f"unknown dialect {chosen!r}; use one of {', '.join(DIALECTS)}")

    roles: dict[str, int | None] = {}
    for role, names in ROLES[chosen].items():
        found = [seen[name] for name in names if name in seen]
        if len(found) > 1:
            both = " and ".join(repr(cells[i]) for i in found)
            raise FileProblem("ambiguous_column", f"columns {both} both mean the event's {role}; keep one")
        roles[role] = found[0] if found else None
    if roles["person"] is None:
        wanted = " or ".join(f"`{n}`" for n in ROLES[chosen]["person"])
        raise FileProblem("no_person_column", f"no person column: a {chosen} events file needs {wanted}")
    if roles["name"] is None:
        wanted = " or ".join(f"`{n}`" for n in ROLES[chosen]["name"])
        raise FileProblem("no_event_name_column", f"no event name column: a {chosen} events file needs {wanted}")

    taken = {i for i in roles.values() if i is not None}
    dropped = tuple(i for i, c in enumerate(cells) if c.lower() in REPORT_COLUMNS)
    unnamed = tuple(i for i, c in enumerate(cells) if not c)
    properties = tuple(
        (i, c) for i, c in enumerate(cells) if i not in taken and i not in dropped and c
    )
    notes = tuple(
        f"column {column_letter(i)} {key!r} has spaces or special characters: "
        f"templates must write {{{{event[\"{key}\"]}}}}"
        for i, key in properties
        if not _PLAIN_NAME.fullmatch(key)
    )
    return Columns(
        dialect=chosen,
        header=cells,
        person=roles["person"],  # type: ignore[arg-type]
        name=roles["name"],  # type: ignore[arg-type]
        time=roles["time"],
        event_id=roles["event_id"],
        properties=properties,
        dropped=dropped,
        unnamed=unnamed,
        notes=notes,
    )
