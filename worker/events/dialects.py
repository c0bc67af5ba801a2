"""The two events dialects, and mapping a header row to column roles. Pure: no I/O.

Vero: the person is ``email`` (or ``id``, the person's Vero user id), the event's
name ``event_name`` (or ``name``), its time ``time``, ``timestamp`` or ``date``, its id
``event_id``. Customer.io: ``_cio_customer_id``, ``_cio_name``, ``_cio_timestamp``,
``_cio_id``. Every other named column is a property, its key the header as written.

Header names are compared without regard to case, spaces, underscores and hyphens,
so ``Event Name``, ``EVENT_NAME`` and ``Email Address`` are recognised. Where two
columns could mean one role, the more explicit name wins (``event_name`` over
``name``; the other is a property, and :attr:`Columns.notes` says so); two equally
explicit ones (``date`` and ``time``) refuse the file with a message naming both.
``--map COLUMN=ROLE`` settles any of this by hand, ``--skip COLUMN`` leaves a column out.
A missing role's refusal names the columns that could be it (:mod:`worker.events.candidates`);
a property name over :data:`worker.cells.NAME_LIMIT` bytes refuses the file.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from worker.cells import (
    REPORT_COLUMNS,
    column_letter,
    header_key,
    header_names,
    is_report_file,
    refuse_long_names,
)
from worker.errors import FileProblem
from worker.events.candidates import event_name_hint, person_hint

VERO = "vero"
CUSTOMERIO = "customerio"
DIALECTS = (VERO, CUSTOMERIO)

# role -> tiers of accepted names (compared by header_key), the most explicit tier first.
ROLES: dict[str, dict[str, tuple[tuple[str, ...], ...]]] = {
    VERO: {
        "email": (("email", "emailaddress"),),
        "id": (("id", "userid", "customerid"),),
        "name": (("eventname",), ("event", "name")),
        "time": (("eventtime", "eventdate"), ("time", "timestamp", "date", "datetime")),
        "event_id": (("eventid",),),
    },
    CUSTOMERIO: {
        "person": (("ciocustomerid",),),
        "name": (("cioname",),),
        "time": (("ciotimestamp",),),
        "event_id": (("cioid",),),
    },
}
#: What ``--map COLUMN=ROLE`` may name (anything else renames the property).
MAP_ROLES = {"email": "email", "id": "id", "person": "person", "event_name": "name", "name": "name",
             "time": "time", "timestamp": "time", "event_id": "event_id"}
_MAP_NAME = {"email": "email", "id": "id", "person": "person", "name": "event_name", "time": "time",
             "event_id": "event_id"}
_LABELS = {"email": "person (e-mail)", "id": "person (id)", "person": "person", "name": "event name",
           "time": "event time", "event_id": "event id"}
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
    #: ``_row``/``_errors``/``_warnings`` and ``--skip`` columns: not imported
    dropped: tuple[int, ...]
    #: columns with an empty header cell: must be empty throughout
    unnamed: tuple[int, ...]
    #: column-level remarks for the user (names awkward in templates, columns read as properties)
    notes: tuple[str, ...]
    #: what the person column holds: "email" or "id" (Vero, from the column), None (Customer.io: by value)
    person_kind: str | None = None
    #: a Vero file matched by e-mail: its ``id`` column, read as a property (the events pipeline warns
    #: when it is the id of a person other than the e-mail's)
    id_property: int | None = None

    @property
    def id_property_key(self) -> str | None:
        """The property key of :attr:`id_property`, or None."""
        return dict(self.properties).get(self.id_property) if self.id_property is not None else None

    @property
    def from_report(self) -> bool:
        """True for a file we wrote (an errors or warnings CSV)."""
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

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for the import's stored spec."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Columns:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        fields["header"] = tuple(fields["header"])
        fields["properties"] = tuple(tuple(p) for p in fields["properties"])
        for name in ("dropped", "unnamed", "notes"):
            fields[name] = tuple(fields[name])
        return cls(**fields)


def detect_dialect(header: list[str]) -> str | None:
    """The dialect a header row is written in, or None if neither."""
    names = {header_key(cell.strip()) for cell in header}
    if any(cell.strip().lower().startswith("_cio_") for cell in header):
        return CUSTOMERIO
    vero = ROLES[VERO]
    person = {n for role in ("email", "id") for tier in vero[role] for n in tier}
    if names & (person | {"eventname"}):
        return VERO  # (a Vero file missing its event name or person column: plan_columns says which)
    return None


def _mapped(cells: tuple[str, ...], mapping: dict[str, str], skip: tuple[str, ...]) -> tuple[dict[int, str], set[int]]:
    """Column index -> role or new property name from ``--map``; the ``--skip`` columns."""
    by_name = {c.lower(): i for i, c in enumerate(cells) if c}
    for name in [*mapping, *skip]:
        if name.strip().lower() not in by_name:
            raise FileProblem("unknown_column", f"--map/--skip name a column {name!r} that the header does not have; "
                                                f"it has: {', '.join(c for c in cells if c)}")
    targets = {by_name[k.strip().lower()]: v.strip() for k, v in mapping.items()}
    return targets, {by_name[s.strip().lower()] for s in skip}


# Words in a header that say "this is when it happened".
_TIME_WORDS = re.compile(r"(^|[^a-z])(time|date|timestamp|datetime|when|occurred)([^a-z]|$)|[_ ]at$|^ts$", re.IGNORECASE)
_CAMEL_AT = re.compile(r"[a-z]At$")  # createdAt, occurredAt


def _refuse_an_unread_time(cells: tuple[str, ...], dropped: set[int], targets: dict[int, str]) -> None:
    """No column is the event's time, but one is named like a time: every event would silently happen
    "now" (and trigger now). Refused, saying how to use it or to keep it a property."""
    for index, cell in enumerate(cells):
        if cell and index not in dropped and index not in targets and (_TIME_WORDS.search(cell)
                                                                      or _CAMEL_AT.search(cell)):
            raise FileProblem(
                "unread_time_column",
                f"no column is the event's time, but column {column_letter(index)} {cell!r} looks like one: "
                f"without a time every event happens when it is imported. Use it with --map '{cell}=time', "
                f"or keep it a property with --map '{cell}={cell}'")


def plan_columns(header: list[str], *, dialect: str | None = None, max_columns: int = 100,
                 identifier: str | None = None, mapping: dict[str, str] | None = None,
                 skip: tuple[str, ...] | list[str] = ()) -> Columns:
    """Map a header row to column roles; raise FileProblem when it cannot be imported.

    ``identifier`` ("email" or "id") chooses the person column of a Vero file that has both.
    """
    cells, _ = header_names(header, max_columns)
    targets, skipped = _mapped(cells, mapping or {}, tuple(skip))
    mapped_roles = {i: MAP_ROLES[t.lower()] for i, t in targets.items() if t.lower() in MAP_ROLES}
    chosen = dialect or detect_dialect([targets.get(i, c) for i, c in enumerate(cells)])
    if chosen is None and any(r in ("email", "id") for r in mapped_roles.values()):
        chosen = VERO
    if chosen is None:
        raise FileProblem(
            "no_person_column",
            "no person column: the header needs `email` or `id` (Vero) or `_cio_customer_id` (Customer.io), "
            f"or --map COLUMN=email{person_hint(cells)}; it has: {', '.join(cells) or '(nothing)'}",
        )
    if chosen not in ROLES:
        raise FileProblem("unknown_dialect", f"unknown dialect {chosen!r}; use one of {', '.join(DIALECTS)}")
    if chosen == CUSTOMERIO:
        mapped_roles = {i: ("person" if r in ("email", "id") else r) for i, r in mapped_roles.items()}

    dropped = {i for i, c in enumerate(cells) if c.lower() in REPORT_COLUMNS} | skipped
    notes: list[str] = []
    roles: dict[str, int | None] = {}
    for role, tiers in ROLES[chosen].items():
        by_hand = [i for i, r in mapped_roles.items() if r == role]
        if len(by_hand) > 1:
            raise FileProblem("ambiguous_column", f"--map gives two columns the role {role}: "
                                                  + " and ".join(repr(cells[i]) for i in by_hand))
        found = by_hand[0] if by_hand else None
        for tier in tiers:
            matches = [i for i, c in enumerate(cells) if c and i not in dropped and i not in targets
                       and header_key(c) in tier]
            if found is None:
                if len(matches) > 1:
                    both = " and ".join(repr(cells[i]) for i in matches)
                    raise FileProblem("ambiguous_column",
                                      f"columns {both} could each be the {_LABELS[role]}; keep one, or say which "
                                      f"with --map (e.g. --map '{cells[matches[-1]]}={_MAP_NAME[role]}')")
                found = matches[0] if matches else None
                continue
            for also in matches:
                notes.append(f"column {column_letter(also)} {cells[also]!r} is imported as a "
                             f"property: {cells[found]!r} is the {_LABELS[role]}")
        roles[role] = found

    person_kind: str | None = None
    id_property: int | None = None
    if chosen == VERO:
        email, pid = roles.pop("email"), roles.pop("id")
        if identifier not in (None, "email", "id"):
            raise FileProblem("bad_identifier", f"--identifier must be id or email, not {identifier!r}")
        if identifier == "id" or (identifier is None and email is None):
            roles["person"], other, person_kind = pid, email, "id"
        else:
            roles["person"], other, person_kind = email, pid, "email"
        if roles["person"] is None:
            wanted = identifier or "email"
            raise FileProblem("no_person_column", f"no person column: the file needs a column `{wanted}`"
                                                  + ("" if identifier else " or `id`")
                                                  + f" (or --map COLUMN={wanted}); it has: "
                                                  + ", ".join(c for i, c in enumerate(cells) if c and i not in dropped))
        if other is not None and person_kind == "email":
            id_property = other
        if other is not None:
            notes.append(f"column {column_letter(other)} {cells[other]!r} is imported as a property: people are "
                         f"matched by {person_kind} (--identifier {'email' if person_kind == 'id' else 'id'} "
                         "to match them by it)")
    if roles["person"] is None:
        raise FileProblem("no_person_column", "no person column: a customerio events file needs `_cio_customer_id`")
    if roles["name"] is None:
        wanted = "`event_name` or `name`" if chosen == VERO else "`_cio_name`"
        hint = event_name_hint(cells, dropped | set(targets) | {i for i in roles.values() if i is not None})
        raise FileProblem("no_event_name_column", f"no event name column: a {chosen} events file needs {wanted} "
                                                  "(or --map COLUMN=event_name)"
                                                  + (hint or "; if it is a people file, import it with --type people")
                                                  + "; it has: " + ", ".join(c for i, c in enumerate(cells)
                                                                             if c and i not in dropped))

    if roles["time"] is None:
        _refuse_an_unread_time(cells, dropped, targets)
    taken = {i for i in roles.values() if i is not None}
    unnamed = tuple(i for i, c in enumerate(cells) if not c)
    properties = tuple((i, targets.get(i, c)) for i, c in enumerate(cells)
                       if i not in taken and i not in dropped and c)
    keys = [key.lower() for _, key in properties]
    for key in {k for k in keys if keys.count(k) > 1}:
        raise FileProblem("duplicate_header", f"two columns would both be the property {key!r}; rename one with --map")
    refuse_long_names(properties, "property")
    notes += [
        f"column {column_letter(i)} {key!r} has spaces or special characters: "
        f"templates must write {{{{event[\"{key}\"]}}}}"
        for i, key in properties
        if not _PLAIN_NAME.fullmatch(key)
    ]
    return Columns(
        dialect=chosen,
        header=cells,
        person=roles["person"],
        name=roles["name"],
        time=roles["time"],
        event_id=roles["event_id"],
        properties=properties,
        dropped=tuple(sorted(dropped)),
        unnamed=unnamed,
        notes=tuple(notes),
        person_kind=person_kind,
        id_property=id_property,
    )
