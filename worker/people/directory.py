"""The people directory's rules, applied to a chunk's rows in file order. Pure: no I/O.

The store reads a :class:`Snapshot` (every directory entry the chunk's rows can
touch), :func:`apply_rows` decides row by row against it, and the store commits
the resulting :class:`Changes` only if none of what they overwrite changed
meanwhile (compare-and-set on each person's version and each index entry).
Chunks of one import are applied one after the other in file order, so a row
always sees every earlier row of its file.

A person is a flat mapping: ``cio_id``, ``id``, ``email``, ``created_at`` (Unix
seconds), ``unsubscribed`` ("true"/"false"), ``a:<attribute>``, ``t:<topic>``
("true"/"false"; a topic not stored has its default) and ``_v``, a version that
every write increments.
"""
from __future__ import annotations

import dataclasses
import hashlib

import orjson

from worker.cells import is_email
from worker.people.rows import PersonRow
from worker.problems import Problem

#: attributes stored under their own name; every other attribute is ``a:<name>``
RESERVED_FIELDS = ("created_at", "unsubscribed")


def field(attribute: str) -> str:
    """The field of an attribute in a person's record."""
    return attribute if attribute in RESERVED_FIELDS else "a:" + attribute


@dataclasses.dataclass(frozen=True, slots=True)
class Rules:
    """The options that decide what a row may do."""

    #: all | only_new | only_existing
    data_to_process: str = "all"
    #: the workspace identifies people by id only; e-mails are then plain, shareable values
    id_only: bool = False
    #: what the file looks people up by: id, email (either, in practice) or cio_id
    identifier: str = "id"
    #: created_at of people created without one, Unix seconds
    now_s: int = 0
    #: the file's header names of the identifier columns, for row problems
    labels: tuple[tuple[str, str], ...] = (("cio_id", "cio_id"), ("id", "id"), ("email", "email"))
    #: Segment messages (the Vero destination's rules): an identify may change a person's e-mail, and a
    #: person named on many rows is no file problem (no duplicate_email / id_multiple_emails warnings)
    segment: bool = False

    def label(self, role: str) -> str:
        """The file's name for the column of ``role``."""
        return dict(self.labels).get(role, role)


@dataclasses.dataclass(slots=True)
class Snapshot:
    """The part of the directory one chunk can touch, as read before it is applied."""

    #: id -> cio_id, for the entries that exist
    by_id: dict[str, str] = dataclasses.field(default_factory=dict)
    #: e-mail (lower case) -> cio_id; in an id-only workspace "cio,cio" when people share it
    by_email: dict[str, str] = dataclasses.field(default_factory=dict)
    #: cio_id -> stored fields
    people: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    #: the import's memory of earlier rows (for the file-level warnings)
    seen: dict[bytes, str] = dataclasses.field(default_factory=dict)
    #: cio_ids to give to the people this chunk creates (at least one per row that may create)
    new_ids: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class Changes:
    """What a chunk does to the directory, and what became of each of its rows."""

    imported: int = 0
    created: int = 0
    #: rows of people who already exist, with only_new: counted as duplicates
    skipped: int = 0
    errors: list[tuple[int, list[Problem]]] = dataclasses.field(default_factory=list)
    warnings: list[tuple[int, list[Problem]]] = dataclasses.field(default_factory=list)
    #: cio_id -> (version read, "" for a new person; full new state)
    people: dict[str, tuple[str, dict[str, str]]] = dataclasses.field(default_factory=dict)
    #: (index "id"|"email", key) -> (value read, new value); "" = no entry
    index: dict[tuple[str, str], tuple[str, str]] = dataclasses.field(default_factory=dict)
    #: new entries of the import's memory
    seen: dict[bytes, str] = dataclasses.field(default_factory=dict)


def holder(snap: Snapshot, changes: Changes, kind: str, key: str) -> str | None:
    """The one cio_id the index entry (``kind`` "id" or "email", ``key``) names once ``changes`` apply;
    None for nobody, or for an e-mail several people share."""
    entry = changes.index.get((kind, key))
    value = entry[1] if entry else (snap.by_id if kind == "id" else snap.by_email).get(key, "")
    return value if value and "," not in value else None


def given_identifiers(changes: Changes) -> list[list[str]]:
    """[kind, identifier, cio_id] of every index entry ``changes`` set: the identifiers the chunk gives
    people (a new id or e-mail, the old id an alias keeps finding them by)."""
    return [[kind, key, cio] for (kind, key), (_, new) in changes.index.items() for cio in new.split(",") if cio]


def digest(text: str) -> bytes:
    """8-byte name of an identifier in the import's memory."""
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


class _Directory:
    """The snapshot with this chunk's changes laid over it."""

    def __init__(self, snap: Snapshot, changes: Changes) -> None:
        self.snap, self.changes = snap, changes
        self.states: dict[str, dict[str, str]] = {}
        self.new_ids = iter(snap.new_ids)

    def _read(self, kind: str, key: str) -> str:
        """The index entry as the snapshot read it ("" = none)."""
        return (self.snap.by_id if kind == "id" else self.snap.by_email).get(key, "")

    def lookup(self, kind: str, key: str | None) -> list[str]:
        if not key:
            return []
        entry = self.changes.index.get((kind, key))
        value = entry[1] if entry else self._read(kind, key)
        return [v for v in value.split(",") if v]

    def set_index(self, kind: str, key: str, cios: list[str]) -> None:
        old = self.changes.index.get((kind, key))
        self.changes.index[(kind, key)] = (old[0] if old else self._read(kind, key), ",".join(cios))

    def person(self, cio: str) -> dict[str, str] | None:
        if cio in self.states:
            return self.states[cio]
        return self.snap.people.get(cio) or None

    def write(self, cio: str, state: dict[str, str]) -> None:
        earlier = self.changes.people.get(cio)
        read = earlier[0] if earlier else self.snap.people.get(cio, {}).get("_v", "")
        self.changes.people[cio] = (read, state)
        self.states[cio] = state


def _file_warnings(p: PersonRow, changes: Changes, snap: Snapshot, rules: Rules) -> list[Problem]:
    """Customer.io's file warnings: an e-mail on several rows, an id paired with several e-mails."""
    found: list[Problem] = []

    def recall(key: bytes) -> str | None:
        return changes.seen.get(key) or snap.seen.get(key)

    if p.email_key:
        email_digest = digest(p.email_key)
        key = b"e" + email_digest
        first = recall(key)
        if first:
            found.append(Problem(p.row, rules.label("email"), "duplicate_email", f"{p.email!r} is also on row {first}"))
        else:
            changes.seen[key] = str(p.row)
        if p.id:
            key = b"i" + digest(p.id)
            mine = email_digest.hex()
            first = recall(key)
            if first is None:
                changes.seen[key] = f"{p.row} {mine}"
            elif first.split(" ")[1] != mine:
                found.append(Problem(p.row, rules.label("id"), "id_multiple_emails",
                                     f"id {p.id!r} is paired with a different e-mail on row {first.split(' ')[0]}"))
    return found


def apply_rows(rows: list[PersonRow], snap: Snapshot, rules: Rules) -> Changes:
    """Apply validated rows in order; every row is imported, skipped or an error, once."""
    changes = Changes()
    directory = _Directory(snap, changes)
    failed: set[int] = set()
    for p in rows:
        if not p.counted and p.row in failed:
            continue  # the row's own change failed: what rides along with it does nothing either
        warnings = [] if rules.segment else _file_warnings(p, changes, snap, rules)
        outcome = _apply_one(p, directory, rules)
        if not p.counted:  # rides along with a row counted elsewhere: its problems are warnings
            if isinstance(outcome, list):
                changes.warnings.append((p.row, outcome))
            continue
        if outcome == "skipped":
            changes.skipped += 1
        elif isinstance(outcome, list):  # (a str is only "skipped")
            changes.errors.append((p.row, outcome))
            failed.add(p.row)
        else:
            changes.imported += 1
            if warnings:
                changes.warnings.append((p.row, warnings))
    for read, state in changes.people.values():
        state["_v"] = str(int(read or 0) + 1)
    return changes


def _resolve(p: PersonRow, d: _Directory, rules: Rules) -> str | None | Problem:
    """The cio_id the row names, None for nobody yet, or why it cannot be told."""
    if rules.identifier == "cio_id":
        return p.cio_id if d.person(p.cio_id or "") is not None else None
    by_id, by_email = d.lookup("id", p.id), d.lookup("email", p.email_key)
    if rules.id_only:
        if p.id:
            return by_id[0] if by_id else None
        if len(by_email) > 1:
            return Problem(p.row, rules.label("email"), "ambiguous_email",
                           f"{len(by_email)} people have the e-mail {p.email!r}; give their id to say which")
        return by_email[0] if by_email else None
    a, b = (by_id[0] if by_id else None), (by_email[0] if by_email else None)
    if a and b and a != b:
        return Problem(p.row, rules.label("id"), "identifier_conflict",
                       f"id {p.id!r} and e-mail {p.email!r} belong to two different people")
    return a or b


def _apply_one(p: PersonRow, d: _Directory, rules: Rules) -> list[Problem] | str | None:
    if p.alias_of is not None:
        return _alias(p, d, rules)
    resolved = _resolve(p, d, rules)
    if isinstance(resolved, Problem):
        return [resolved]
    if resolved is None:
        if rules.identifier == "cio_id" or rules.data_to_process == "only_existing":
            which = "cio_id" if rules.identifier == "cio_id" else ("id" if p.id else "email")
            value = {"cio_id": p.cio_id, "id": p.id, "email": p.email}[which]
            return [Problem(p.row, rules.label(which), "person_not_found", f"no person with {which} {value!r} "
                            f"({'cio_id only updates people' if which == 'cio_id' else 'only_existing updates only'})")]
        if rules.id_only and not p.id:
            return [Problem(p.row, rules.label("id"), "missing_id", "this workspace adds people by id only: give the row an id")]
        cio = next(d.new_ids)
        state = {"cio_id": cio, "created_at": str(rules.now_s)}
        before: dict[str, str] = {}
    else:
        if rules.data_to_process == "only_new":
            return "skipped"
        cio = resolved
        before = d.person(cio) or {}
        state = dict(before)
        if rules.segment and p.id and before.get("id") not in (None, p.id) and cio in d.lookup("id", p.id):
            # the id an alias left behind: it names this person, it does not rename them back
            p = dataclasses.replace(p, id=None)
        if not p.counted and p.email_key and before.get("email", p.email_key).lower() != p.email_key:
            # an e-mail given beside an event (context.traits.email) does not replace the person's own
            d.changes.warnings.append((p.row, [Problem(p.row, "context.traits.email", "email_differs",
                                                       f"the person's e-mail is {before['email']!r}, kept")]))
            p = dataclasses.replace(p, email=None)
    problems = _identifier_changes(p, cio, before, d, rules)
    if problems:
        return problems
    if resolved is None:
        d.changes.created += 1
    _set_identifiers(p, cio, before, state, d, rules)
    _set_attributes(p, state, creating=resolved is None)
    if rules.segment and resolved is not None and state == before:
        return None  # a message that changes nothing writes nothing (a replayed identify, an event's e-mail)
    d.write(cio, state)
    return None


def _identifier_changes(p: PersonRow, cio: str, before: dict[str, str], d: _Directory,
                        rules: Rules) -> list[Problem]:
    """Why the row may not set its id or e-mail on this person (empty when it may)."""
    problems = []
    may_change = rules.identifier == "cio_id"
    if p.id and p.id != before.get("id", p.id) and not may_change:
        problems.append(Problem(p.row, rules.label("id"), "failed_attribute_change",
                                f"the person already has id {before['id']!r}; to change an id, identify people "
                                "by cio_id"))
    elif p.id and any(other != cio for other in d.lookup("id", p.id)):
        problems.append(Problem(p.row, rules.label("id"), "identifier_taken", f"another person already has id {p.id!r}"))
    old_email = before.get("email", "").lower()
    if p.email_key and old_email and p.email_key != old_email and not (may_change or rules.segment) \
            and not rules.id_only:
        problems.append(Problem(p.row, rules.label("email"), "failed_attribute_change",
                                f"the person already has e-mail {before['email']!r}; to change an e-mail, "
                                "identify people by cio_id"))
    elif p.email_key and not rules.id_only and any(o != cio for o in d.lookup("email", p.email_key)):
        problems.append(Problem(p.row, rules.label("email"), "identifier_taken",
                                f"another person already has e-mail {p.email!r}"))
    return problems


def _set_identifiers(p: PersonRow, cio: str, before: dict[str, str], state: dict[str, str],
                     d: _Directory, rules: Rules) -> None:
    if p.id and p.id != before.get("id"):
        if before.get("id"):
            d.set_index("id", before["id"], [])
        d.set_index("id", p.id, [cio])
        state["id"] = p.id
    old_email = before.get("email", "").lower()
    if p.email_key and p.email_key != old_email:
        if old_email:
            d.set_index("email", old_email, [c for c in d.lookup("email", old_email) if c != cio])
        sharers = d.lookup("email", p.email_key) if rules.id_only else []
        d.set_index("email", p.email_key, [*[c for c in sharers if c != cio], cio])
        state["email"] = p.email  # type: ignore[assignment]  # set only when the row gives an e-mail


def _set_attributes(p: PersonRow, state: dict[str, str], *, creating: bool) -> None:
    for name, value in p.set.items():
        state[field(name)] = value
    for name in p.clear:
        if not (creating and name == "created_at"):
            state.pop(field(name), None)
    if p.topics_replace is not None:
        for key in [k for k in state if k.startswith("t:")]:
            del state[key]
        for topic, flag in p.topics_replace.items():
            state["t:" + topic] = "true" if flag else "false"
    for topic, flag in p.topics.items():
        state["t:" + topic] = "true" if flag else "false"
    for topic in p.topics_clear:
        state.pop("t:" + topic, None)
    _set_tags(p, state)


def _set_tags(p: PersonRow, state: dict[str, str]) -> None:
    if p.tags_add or p.tags_remove:
        tags = set(orjson.loads(state.get("tags") or "[]")) | set(p.tags_add)
        tags -= set(p.tags_remove)
        if tags:
            state["tags"] = orjson.dumps(sorted(tags)).decode()
        else:
            state.pop("tags", None)


def _alias(p: PersonRow, d: _Directory, rules: Rules) -> list[Problem] | None:
    """Segment's alias: the person known as ``p.alias_of`` (an id, or an e-mail) is re-identified as
    ``p.id``; the old identifier keeps finding them. Two different people are never merged."""
    old = p.alias_of or ""
    by_email = is_email(old)
    old_key = old.lower() if by_email else old
    was = d.lookup("email" if by_email else "id", old_key)
    now = d.lookup("id", p.id)
    if was and now and was[0] != now[0]:
        return [Problem(p.row, "userId", "alias_conflict",
                        f"{old!r} and {p.id!r} are two different people: alias re-identifies one person, it does "
                        "not merge two")]
    if was:
        cio = was[0]
        state = dict(d.person(cio) or {})
        before = dict(state)
        if state.get("id") != p.id:  # (their old id entry stays: it still finds them)
            d.set_index("id", p.id, [cio])  # type: ignore[arg-type]  # set only when the row gives an id
            state["id"] = p.id  # type: ignore[assignment]  # set only when the row gives an id
        _set_tags(p, state)
        if state != before:
            d.write(cio, state)
        return None
    if now:
        cio = now[0]
        state = dict(d.person(cio) or {})
    else:
        cio = next(d.new_ids)
        state = {"cio_id": cio, "id": p.id, "created_at": str(rules.now_s)}  # type: ignore[dict-item]  # a new person made by id has one
        d.set_index("id", p.id, [cio])  # type: ignore[arg-type]  # a new person made by id has one
        d.changes.created += 1
    if by_email:
        if state.get("email") and state["email"].lower() != old_key:
            return [Problem(p.row, "previousId", "alias_conflict",
                            f"{p.id!r} already has the e-mail {state['email']!r}, not {old!r}")]
        if any(c != cio for c in d.lookup("email", old_key)):
            return [Problem(p.row, "previousId", "identifier_taken", f"another person already has e-mail {old!r}")]
        d.set_index("email", old_key, [cio])
        state["email"] = old
    else:
        d.set_index("id", old, [cio])  # the old id finds them from now on
    _set_tags(p, state)
    d.write(cio, state)
    return None
