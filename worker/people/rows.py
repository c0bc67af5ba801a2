"""Row validation for people files: cells in, person changes and row problems out. Pure: no I/O.

What a row *means* is decided here, with no knowledge of the directory; what
it *does* (create, update, refuse) is decided in order by :mod:`worker.people.directory`.
"""
from __future__ import annotations

import dataclasses
from datetime import tzinfo

import orjson

from worker.cells import (
    SCIENTIFIC,
    clean_cells,
    composed,
    email_problem,
    fit_cells,
    is_email,
    mangled_problem,
    visible,
)
from worker.people.columns import PeopleColumns
from worker.problems import Problem
from worker.timestamps import parse_time, time_problem

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


@dataclasses.dataclass(slots=True)
class PersonRow:
    """One valid row of a people file: who it names and what it sets."""

    row: int
    cio_id: str | None
    id: str | None
    email: str | None
    #: attribute name -> value, for non-empty cells (reserved ones included: created_at, unsubscribed)
    set: dict[str, str]
    #: attributes to remove (empty cells with --empty-cells clear)
    clear: tuple[str, ...] = ()
    #: the whole topic map (``cio_subscription_preferences``), replacing every topic; None = not given
    topics_replace: dict[str, bool] | None = None
    #: single topics set by topic columns
    topics: dict[str, bool] = dataclasses.field(default_factory=dict)
    #: topics reset to their default (empty topic cells with --empty-cells clear)
    topics_clear: tuple[str, ...] = ()
    #: Segment sources: tags added to and removed from the person's tag set
    tags_add: tuple[str, ...] = ()
    tags_remove: tuple[str, ...] = ()
    #: Segment's alias: the identifier (id or e-mail) the person had, re-identified as ``id``
    alias_of: str | None = None
    #: False for a change that rides along with a row counted elsewhere (a track call's tags): its
    #: problems are the row's warnings, and it counts as nothing itself
    counted: bool = True
    #: the e-mail as the directory is keyed (addresses are case-insensitive); computed once, read often
    email_key: str | None = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.email_key = self.email.lower() if self.email else None


@dataclasses.dataclass(slots=True)
class PeopleRows:
    """What validation made of one chunk of a people file."""

    rows: list[PersonRow] = dataclasses.field(default_factory=list)
    #: (row, original cells, problems)
    errors: list[tuple[int, list[str], list[Problem]]] = dataclasses.field(default_factory=list)
    #: (row, original cells, problems) of rows imported with a warning
    warnings: list[tuple[int, list[str], list[Problem]]] = dataclasses.field(default_factory=list)


def parse_bool(text: str) -> bool | None:
    """true/false, 1/0, yes/no (any case), or None."""
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def parse_preferences(text: str) -> dict[str, bool] | str:
    """The topics of ``{"topics": {"topic_1": true}}``, or the reason it is not that."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return 'not JSON; write {"topics": {"topic_1": true, "topic_2": false}}'
    if not isinstance(data, dict) or set(data) != {"topics"} or not isinstance(data["topics"], dict):
        return 'must be an object with one key, "topics", holding {"topic_<id>": true|false, ...}'
    bad = [k for k, v in data["topics"].items() if not isinstance(v, bool)]
    if bad:
        return f"topic {bad[0]!r} must be true or false"
    return dict(data["topics"])


def validate_people(rows: list[list[str]], numbers: list[int], columns: PeopleColumns, *,
                    tz: tzinfo, clear_empty: bool, formats: tuple[str, ...] = (),
                    dst: str | None = None) -> PeopleRows:
    """Validate a chunk of people records; every record lands in rows or errors, once.

    ``created_at`` is read as :func:`worker.timestamps.parse_time` reads it, under ``tz``, ``formats``
    and ``dst``."""
    out = PeopleRows()
    header = columns.header
    width = len(header)
    for raw, row in zip(rows, numbers):
        cells, problems = fit_cells(clean_cells(raw), row, width)
        notes: list[Problem] = []

        def cell(index: int | None, cells: list[str] = cells, row: int = row, notes: list[Problem] = notes) -> str:
            """An identifier's cell: without invisible characters, composed (NFC), each with a warning."""
            if index is None:
                return ""
            value = cells[index]
            if value.isascii():
                return value
            return composed(visible(value, header[index], row, notes), header[index], row, notes)

        cio_id, pid, email = cell(columns.cio_id), cell(columns.id), cell(columns.email)
        for value, index in ((pid, columns.id), (cio_id, columns.cio_id)):
            if value and SCIENTIFIC.fullmatch(value):
                problems.append(Problem(row, header[index], "mangled_number",  # type: ignore[index]  # index is one of the file's columns
                                        mangled_problem(value)))
        if columns.identifier == "cio_id":
            if not cio_id:
                problems.append(Problem(row, header[columns.cio_id], "missing_identifier",  # type: ignore[index]  # the cio_id column is there when it is the identifier
                                        "no cio_id: a file identified by cio_id needs it on every row"))
        elif not pid and not email:
            named = [header[i] for i in (columns.id, columns.email) if i is not None]
            problems.append(Problem(row, named[0], "missing_identifier",
                                    "no identifier: the row needs a value in " + " or ".join(map(repr, named))))
        if email:
            label = header[columns.email]  # type: ignore[index]  # the email column is there when an email was read from it
            if sum(1 for part in email.replace(";", ",").replace(" ", ",").split(",") if "@" in part) > 1:
                problems.append(Problem(row, label, "multiple_emails", f"{email!r} holds several addresses; "
                                                                       "an email cell holds one"))
            elif not is_email(email):
                problems.append(Problem(row, label, "invalid_email", email_problem(email)))

        values: dict[str, str] = {}
        clear: list[str] = []
        if columns.created_at is not None:
            text = cells[columns.created_at]
            if text:
                ts = parse_time(text, tz, formats, dst)
                if ts is None:
                    problems.append(Problem(row, header[columns.created_at], *time_problem(text, tz, formats, dst)))
                else:
                    values["created_at"] = str(int(ts))
            elif clear_empty:
                clear.append("created_at")
        if columns.unsubscribed is not None:
            text = cells[columns.unsubscribed]
            if text:
                flag = parse_bool(text)
                if flag is None:
                    problems.append(Problem(row, header[columns.unsubscribed], "invalid_boolean",
                                            f"unsubscribed must be true/false, 1/0 or yes/no, got {text!r}"))
                else:
                    values["unsubscribed"] = "true" if flag else "false"
            elif clear_empty:
                clear.append("unsubscribed")
        replace: dict[str, bool] | None = None
        if columns.preferences is not None:
            text = cells[columns.preferences]
            if text:
                parsed = parse_preferences(text)
                if isinstance(parsed, str):
                    problems.append(Problem(row, header[columns.preferences], "invalid_preferences", parsed))
                else:
                    replace = parsed
            elif clear_empty:
                replace = {}
        topics: dict[str, bool] = {}
        topics_clear: list[str] = []
        for index, topic in columns.topics:
            text = cells[index]
            if text:
                flag = parse_bool(text)
                if flag is None:
                    problems.append(Problem(row, header[index], "invalid_boolean",
                                            f"a topic preference is true/false, 1/0 or yes/no, got {text!r}"))
                else:
                    topics[topic] = flag
            elif clear_empty:
                topics_clear.append(topic)
        if problems:
            out.errors.append((row, list(raw), problems))
            continue
        for index, name in columns.attributes:
            if cells[index]:
                values[name] = cells[index]
            elif clear_empty:
                clear.append(name)
        if notes:
            out.warnings.append((row, list(raw), notes))
        out.rows.append(PersonRow(row, cio_id or None, pid or None, email or None, values, tuple(clear),
                                  replace, topics, tuple(topics_clear)))
    return out
