"""What each column of a people file means (Customer.io's "Import people via CSV"). Pure: no I/O.

A column is an identifier (``cio_id``, ``id``, ``email``), a reserved attribute
(``created_at``, ``unsubscribed``), subscription preferences (the whole
``cio_subscription_preferences`` JSON, or one topic as
``cio_subscription_preferences.topics.<topic>``), or a custom attribute. ``--map
COLUMN=ATTRIBUTE`` renames a column before that decision, ``--skip COLUMN``
leaves it out. Matching of reserved names is case-insensitive; custom
attribute names keep the header as written (trimmed).
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

IDENTIFIERS = ("cio_id", "id", "email")
DATA_TO_PROCESS = ("all", "only_new", "only_existing")
EMPTY_CELLS = ("ignore", "clear")
PREFERENCES = "cio_subscription_preferences"
TOPIC_PREFIX = PREFERENCES + ".topics."
_RESERVED = ("cio_id", "id", "email", "created_at", "unsubscribed", PREFERENCES)
# Reserved names as people write them (compared by header_key: case, spaces, underscores aside).
_ALIASES = {"cioid": "cio_id", "email": "email", "emailaddress": "email", "createdat": "created_at",
            "unsubscribed": "unsubscribed", "ciosubscriptionpreferences": PREFERENCES}
# Names a template can use as {{customer.name}}: anything else needs {{customer["na me"]}}.
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclasses.dataclass(frozen=True, slots=True)
class PeopleColumns:
    """The roles of a people file's columns (indexes into the header)."""

    header: tuple[str, ...]
    #: the identifier people are looked up by: "cio_id", "id" or "email"
    identifier: str
    cio_id: int | None
    id: int | None
    email: int | None
    created_at: int | None
    unsubscribed: int | None
    preferences: int | None
    #: (column index, topic key such as "topic_1")
    topics: tuple[tuple[int, str], ...]
    #: (column index, attribute name)
    attributes: tuple[tuple[int, str], ...]
    #: our own report columns and the --skip columns: not imported
    dropped: tuple[int, ...]
    #: columns with an empty header cell: must be empty throughout
    unnamed: tuple[int, ...]
    #: mapping warnings: names that are awkward in templates
    notes: tuple[str, ...]
    dialect: str = "people"

    @property
    def from_report(self) -> bool:
        """True for a file we wrote (an errors or warnings CSV): its cells carry our escapes."""
        return is_report_file(self.header, self.dropped)

    def role_of(self, index: int) -> str:
        """The role of column ``index``, for ``backfill inspect``."""
        for role in ("cio_id", "id", "email", "created_at", "unsubscribed", "preferences"):
            if getattr(self, role) == index:
                return role
        if any(i == index for i, _ in self.topics):
            return "topic"
        if index in self.dropped:
            return "dropped"
        if index in self.unnamed:
            return "unnamed"
        return "attribute"

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for the import's stored spec."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeopleColumns:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        for name in ("header", "dropped", "unnamed", "notes"):
            fields[name] = tuple(fields[name])
        for name in ("topics", "attributes"):
            fields[name] = tuple(tuple(p) for p in fields[name])
        return cls(**fields)


def parse_mapping(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["Mail=email", ...]`` -> ``{"mail": "email"}`` (column names case-insensitive)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, attribute = pair.partition("=")
        if not sep or not column.strip() or not attribute.strip():
            raise ValueError(f"--map takes COLUMN=NAME, got {pair!r}")
        mapping[column.strip().lower()] = attribute.strip()
    return mapping


def plan_people_columns(
    header: list[str],
    *,
    identifier: str | None = None,
    mapping: dict[str, str] | None = None,
    skip: tuple[str, ...] | list[str] = (),
    data_to_process: str = "all",
    max_columns: int = 100,
) -> PeopleColumns:
    """Map a people file's header to roles; raise FileProblem when it cannot be imported."""
    cells, lowered = header_names(header, max_columns)
    mapping = mapping or {}
    for name in [*mapping, *(s.lower() for s in skip)]:
        if name not in lowered:
            raise FileProblem("unknown_column", f"--map/--skip name a column {name!r} that the header does not have; "
                                                f"it has: {', '.join(c for c in cells if c)}")
    skipped = {s.strip().lower() for s in skip}

    roles: dict[str, int] = {}
    topics: list[tuple[int, str]] = []
    attributes: list[tuple[int, str]] = []
    dropped = []
    targets: dict[str, int] = {}
    for index, cell in enumerate(cells):
        if not cell:
            continue
        if cell.lower() in REPORT_COLUMNS or cell.lower() in skipped:
            dropped.append(index)
            continue
        target = mapping.get(cell.lower(), cell)
        key = target.lower()
        if cell.lower() not in mapping and key not in _RESERVED and header_key(target) in _ALIASES:
            key = target = _ALIASES[header_key(target)]  # "Email Address", "Created At", "CIO ID"
        if key in targets:
            raise FileProblem("duplicate_attribute", f"columns {column_letter(targets[key])} and {column_letter(index)} "
                                                     f"both set {target!r}; a file has at most one of each "
                                                     "(one email column, one cell per address)")
        targets[key] = index
        if key in _RESERVED:
            roles["preferences" if key == PREFERENCES else key] = index
        elif key.startswith(TOPIC_PREFIX):
            topic = target[len(TOPIC_PREFIX):].strip()
            if not topic or "." in topic:
                raise FileProblem("bad_topic_column", f"column {column_letter(index)} {cell!r}: a topic column is "
                                                      f"{TOPIC_PREFIX}<topic>, for example {TOPIC_PREFIX}topic_1")
            topics.append((index, topic))
        else:
            attributes.append((index, target))

    present = [name for name in IDENTIFIERS if name in roles]
    if identifier is None:
        if not present:
            raise FileProblem("no_identifier_column", "no identifier column: a people file needs `id` or `email` "
                                                      "(or `cio_id` to update people); it has: "
                                                      f"{', '.join(c for c in cells if c) or '(nothing)'}"
                                                      " (use --map COLUMN=id to name one)")
        identifier = present[0]
    elif identifier not in IDENTIFIERS:
        raise FileProblem("bad_identifier", f"--identifier must be id, email or cio_id, not {identifier!r}")
    elif identifier not in roles:
        raise FileProblem("no_identifier_column", f"--identifier {identifier}: the file has no {identifier!r} column "
                                                  "(use --map COLUMN=" + identifier + " to name one)")
    if identifier == "cio_id" and data_to_process == "only_new":
        raise FileProblem("cio_id_cannot_add", "people identified by cio_id can only be updated: cio_id is assigned "
                                               "when a person is added; use --data-to-process all or only_existing")

    refuse_long_names(tuple(attributes), "attribute")
    notes = tuple(
        f"column {column_letter(i)} {name!r} has spaces or special characters: templates must write "
        f"{{{{customer[\"{name}\"]}}}}"
        for i, name in attributes if not _PLAIN_NAME.fullmatch(name)
    )
    return PeopleColumns(
        header=cells, identifier=identifier,
        cio_id=roles.get("cio_id"), id=roles.get("id"), email=roles.get("email"),
        created_at=roles.get("created_at"), unsubscribed=roles.get("unsubscribed"),
        preferences=roles.get("preferences"), topics=tuple(topics), attributes=tuple(attributes),
        dropped=tuple(dropped), unnamed=tuple(i for i, c in enumerate(cells) if not c), notes=notes,
    )
