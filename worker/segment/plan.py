"""The Vero destination's rules: what each Segment call does to the directory and the events. Pure.

A chunk of messages becomes two lists, each in file order: the **events** (track,
page, screen) that go through the same dedupe, trigger rules and commit as CSV
events, and the **person changes** (identify, group, alias, tags, the Unsubscribe
track) that go through the people directory's rules. Every line lands in exactly
one of: events, counted person changes, errors.

| call | what it does |
|---|---|
| identify | creates or updates the person ``userId``: ``traits`` are attributes, ``traits.email`` the e-mail (a userId that is an e-mail also sets it); no userId: the e-mail is the id, with a warning |
| track | an event ``event`` with ``properties`` for ``userId`` (created if unknown); ``track('Unsubscribe', {id})`` unsubscribes ``properties.id`` (or the userId) instead |
| page | an event ``Viewed {category} {name} Page`` (``Loaded a Page`` without either) |
| screen | an event ``Viewed {category} {name} Screen`` (``Loaded a Screen`` without either) |
| group | the person's ``group`` attribute: ``{"id": groupId, ...traits}`` |
| alias | ``previousId`` is re-identified as ``userId``: same person, the old identifier still finds them |
| ``integrations.Vero.tags`` | on any call: adds or removes tags of ``tags.id`` (default: the userId) |
| track, page, screen with only an ``anonymousId`` | held for the anonymous id (triggers nothing); an identify or alias carrying it ties it to the person and moves the events to them (:mod:`worker.segment.anonymous`) |
"""
from __future__ import annotations

import dataclasses
from datetime import tzinfo

import orjson

from worker.cells import composed, email_problem, is_email
from worker.events.rows import Event
from worker.people.rows import PersonRow
from worker.problems import Problem
from worker.segment.anonymous import Link, anonymous_event
from worker.segment.messages import Message, read_message
from worker.timestamps import parse_time

#: traits that name the person rather than describe them
_IDENTITY_TRAITS = ("email", "id", "userId", "user_id")
#: traits read as the person's creation time (Vero's and Customer.io's spellings)
_CREATED = ("created_at", "createdAt")


@dataclasses.dataclass(slots=True)
class SegmentChunk:
    """What a chunk of Segment messages does, each line counted once."""

    events: list[Event] = dataclasses.field(default_factory=list)
    ops: list[PersonRow] = dataclasses.field(default_factory=list)
    #: events with only an anonymousId (their person: the anonymous id), and the identify and alias
    #: calls tying anonymous ids to people
    anonymous: list[Event] = dataclasses.field(default_factory=list)
    links: list[Link] = dataclasses.field(default_factory=list)
    #: (row, cells, problems), as CSV rows have them (the cells: the line itself)
    errors: list[tuple[int, list[str], list[Problem]]] = dataclasses.field(default_factory=list)
    warnings: list[tuple[int, list[str], list[Problem]]] = dataclasses.field(default_factory=list)


def event_name(message: Message) -> str | None:
    """The event a track, page or screen call records (Segment's destinations' names for pages)."""
    if message.type == "track":
        return message.event
    what = "Page" if message.type == "page" else "Screen"
    named = " ".join(part for part in (message.category, message.event) if part)
    return f"Viewed {named} {what}" if named else f"Loaded a {what}"


def is_event(line: str) -> bool:
    """True for a line that :func:`plan` turns into an event (never raises: a line that cannot be
    read is no event). The failure path uses it to tell which rows a chunk's events step counted."""
    message = read_message(line, 0)
    return isinstance(message, Message) and _event_call(message) and (message.user_id or message.anonymous_id) is not None


def _event_call(message: Message) -> bool:
    return message.type in ("page", "screen") or (message.type == "track" and message.event != "Unsubscribe")


def plan(lines: list[str], numbers: list[int], *, tz: tzinfo, now: float, clock_skew_s: float,
         dst: str | None = None) -> SegmentChunk:
    """Read a chunk's lines and apply the rules (see the module's table); no I/O. Times without an
    offset are in ``tz``, ``dst`` choosing the instant of one its clocks repeat."""
    out = SegmentChunk()
    future_limit = now + clock_skew_s
    for line, row in zip(lines, numbers):
        message = read_message(line, row, tz, dst)
        if not isinstance(message, Message):
            out.errors.append((row, [line], message))
            continue
        problems: list[Problem] = []
        notes = list(message.notes)
        ops = _changes(message, problems, notes)
        if not problems and _event_call(message):
            if message.user_id is None and message.anonymous_id is None:
                problems.append(_no_user(message, "an event"))
            else:
                if message.ts is not None and message.ts > future_limit:
                    notes.append(Problem(row, message.ts_from, "future_time",
                                         "the event time is in the future: recorded, never triggers a campaign"))
                name = event_name(message)
                if message.user_id is None:
                    out.anonymous.append(anonymous_event(row, message.anonymous_id, name, message.ts,  # type: ignore[arg-type]  # an anonymous message has its anonymous id (messages.py checks it)
                                                         message.message_id, message.properties))
                else:
                    out.events.append(Event(row, message.user_id, message.user_id, name,  # type: ignore[arg-type]  # a message with a user id is a person's (messages.py checks it)
                                            message.ts, message.message_id, message.properties))
        elif not problems and message.type in ("identify", "alias") and ops:
            for anonymous_id in (message.anonymous_id, message.previous_id if message.type == "alias" else None):
                if anonymous_id and anonymous_id != ops[0].id:
                    out.links.append(Link(row, anonymous_id, ops[0].id))  # type: ignore[arg-type]  # an identify that ties an anonymous id names a person
        if problems:
            out.errors.append((row, [line], problems))
            continue
        out.ops += ops
        if notes:
            out.warnings.append((row, [line], notes))
    return out


def _no_user(message: Message, what: str) -> Problem:
    if message.anonymous_id:
        return Problem(message.row, "userId", "anonymous_message",
                       f"{what} with only an anonymousId names nobody: send the userId (only track, page and "
                       "screen calls are held for their anonymous id)")
    return Problem(message.row, "userId", "missing_user_id", f"{what} needs a userId")


def _tag_changes(message: Message, target: str | None) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """(added, removed, whose) of the message's Vero tags; whose = None for the message's own person."""
    if message.tags is None:
        return (), (), None
    action, values, whose = message.tags
    whose = None if whose in (None, target) else whose
    if action == "add":
        return values, (), whose
    return (), values, whose


def _changes(message: Message, problems: list[Problem], notes: list[Problem]) -> list[PersonRow]:
    """The person changes of one message (the first counted, unless the message is an event)."""
    row, uid = message.row, message.user_id
    ops: list[PersonRow] = []
    if message.type == "identify":
        email = message.traits.get("email")
        email = composed(email.strip(), "traits.email", row, notes) if isinstance(email, str) and email.strip() \
            else None
        if email is not None and not is_email(email):
            problems.append(Problem(row, "traits.email", "invalid_email", email_problem(email)))
            return []
        if email is None and uid and is_email(uid):
            email = uid
        if uid is None and email is not None:
            uid = email
            notes.append(Problem(row, "userId", "email_as_id", f"no userId: {email!r} is the person's id (Vero's "
                                                               "rule); send a userId to keep ids and e-mails apart"))
        if uid is None:
            problems.append(_no_user(message, "an identify call"))
            return []
        values, clear = _attributes(message, problems)
        ops.append(PersonRow(row, None, uid, email, values, clear))
    elif message.type == "group":
        if uid is None:
            problems.append(_no_user(message, "a group call"))
            return []
        group = {"id": message.group_id, **{k: v for k, v in message.traits.items() if k != "id"}}
        ops.append(PersonRow(row, None, uid, None, {"group": orjson.dumps(group).decode()}))
    elif message.type == "alias":
        if uid is None:
            problems.append(_no_user(message, "an alias call"))
            return []
        ops.append(PersonRow(row, None, uid, None, {}, alias_of=message.previous_id))
    elif message.type == "track" and message.event == "Unsubscribe":
        given = _id_of(message.properties.get("id"))
        target = composed(given, "properties.id", row, notes) if given else uid
        if message.properties.get("id") is not None and _id_of(message.properties["id"]) is None:
            problems.append(Problem(row, "properties.id", "invalid_id",
                                    f"the person to unsubscribe must be an id, not {message.properties['id']!r}"))
            return []
        if target is None:
            problems.append(_no_user(message, "an Unsubscribe track"))
            return []
        uid = target
        ops.append(PersonRow(row, None, target, None, {"unsubscribed": "true"}))
    elif uid is not None and message.context_email:
        if is_email(message.context_email):
            ops.append(PersonRow(row, None, uid, message.context_email, {}, counted=False))
        else:
            notes.append(Problem(row, "context.traits.email", "invalid_email",
                                 email_problem(message.context_email) + "; the event is kept, the e-mail is not"))
    added, removed, whose = _tag_changes(message, uid)
    if added or removed:
        if whose is None and ops and uid is not None:
            ops[0].tags_add, ops[0].tags_remove = added, removed
        elif whose is not None or uid is not None:
            ops.append(PersonRow(row, None, whose or uid, None, {}, tags_add=added, tags_remove=removed,
                                 counted=False))
    return ops


def _id_of(value: object) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value).strip() or None
    return None


def _attributes(message: Message, problems: list[Problem]) -> tuple[dict[str, str], tuple[str, ...]]:
    """An identify call's traits as the directory's attributes: text as it is, other JSON values as
    JSON text, null removes the attribute; ``created_at``/``createdAt`` and ``unsubscribed`` are
    the reserved attributes."""
    values: dict[str, str] = {}
    clear: list[str] = []
    for name, value in message.traits.items():
        if name in _IDENTITY_TRAITS:
            continue
        if name in _CREATED:
            ts = parse_time(value.strip()) if isinstance(value, str) and value.strip() else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                ts = parse_time(str(int(value)))
            if ts is None:
                problems.append(Problem(message.row, f"traits.{name}", "invalid_time",
                                        f"{value!r} is not a time (ISO 8601, or Unix seconds)"))
            else:
                values["created_at"] = str(int(ts))
        elif name == "unsubscribed":
            if not isinstance(value, bool):
                problems.append(Problem(message.row, "traits.unsubscribed", "invalid_boolean",
                                        f"must be true or false, not {value!r}"))
            else:
                values["unsubscribed"] = "true" if value else "false"
        elif value is None:
            clear.append(name)
        else:
            values[name] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return values, tuple(clear)
