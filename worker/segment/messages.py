"""Reading one Segment-spec message (one line of an archive). Pure: no I/O, no clock.

:func:`read_message` turns a line into a :class:`Message` or the row's problems,
with the same :class:`~worker.problems.Problem` codes style as CSV rows. The
message's *meaning* for the directory and the events (the Vero destination's
rules) is :mod:`worker.segment.plan`'s business.
"""
from __future__ import annotations

import dataclasses
from datetime import UTC, tzinfo

import orjson

from worker.cells import composed, long_name, visible
from worker.problems import Problem
from worker.segment.envelope import is_envelope
from worker.timestamps import local_problem, parse_time

#: Segment refuses a message larger than this (bytes of JSON); so do we, as a row error.
MESSAGE_LIMIT = 32 * 1024
#: Nesting deeper than this in properties or traits is refused (no template reads it, and a deep
#: document is how a hostile file makes every reader of the results recurse).
DEPTH_LIMIT = 16
#: The call types of the Segment spec that backfill reads.
TYPES = ("identify", "track", "page", "screen", "group", "alias")
# The field whose keys become names (of the event's properties, of the person's attributes), by call.
_NAMES_OF = {"track": "properties", "page": "properties", "screen": "properties", "identify": "traits"}
_WHAT = {"properties": "property", "traits": "trait"}


@dataclasses.dataclass(slots=True)
class Message:
    """A well-formed Segment message, its fields read and checked."""

    row: int
    type: str
    user_id: str | None
    anonymous_id: str | None
    message_id: str | None
    #: Unix seconds (Segment's clock-skew rule, :func:`event_time`); None = when it is processed
    ts: float | None
    #: which field the time came from ("timestamp", "corrected", "originalTimestamp", "receivedAt"), for messages
    ts_from: str | None
    #: track: the event; page/screen: the page's name; identify/group: None
    event: str | None = None
    category: str | None = None
    properties: dict = dataclasses.field(default_factory=dict)
    traits: dict = dataclasses.field(default_factory=dict)
    group_id: str | None = None
    previous_id: str | None = None
    #: ``context.traits.email``: the person's e-mail given beside a track call
    context_email: str | None = None
    #: ``integrations.Vero.tags``: (action, values, id or None)
    tags: tuple[str, tuple[str, ...], str | None] | None = None
    #: warnings (invisible characters removed from an identifier or a name; one written decomposed)
    notes: list[Problem] = dataclasses.field(default_factory=list)


def _text(value: object) -> str | None:
    """A Segment identifier as text: strings trimmed, numbers as written; None when absent or empty."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _too_deep(value: object, depth: int = 0) -> bool:
    if depth > DEPTH_LIMIT:
        return True
    if isinstance(value, dict):
        return any(_too_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_too_deep(v, depth + 1) for v in value)
    return False


def _when(data: dict, name: str, row: int, problems: list[Problem], tz: tzinfo, dst: str | None) -> float | None:
    """Unix seconds of the ISO 8601 time in ``data[name]`` (None when absent); a problem when unreadable."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        ts = parse_time(text, tz, (), dst) if text else None
        if ts is not None:
            return ts
        local = local_problem(text, tz, (), dst) if text else None
        if local is not None:  # a local time the clocks skip or repeat
            problems.append(Problem(row, name, *local))
            return None
    problems.append(Problem(row, name, "invalid_time", f"{value!r} is not an ISO 8601 time (Segment sends "
                                                      "2024-03-01T10:00:00.000Z)"))
    return None


def event_time(data: dict, row: int, problems: list[Problem],
               tz: tzinfo = UTC, dst: str | None = None) -> tuple[float | None, str | None]:
    """Segment's time of a message and where it came from: ``timestamp`` when given; else
    ``receivedAt - (sentAt - originalTimestamp)`` (the client's clock skew taken out); else
    ``originalTimestamp``; else ``receivedAt``; else (None, None): the time it is processed."""
    timestamp = _when(data, "timestamp", row, problems, tz, dst)
    original = _when(data, "originalTimestamp", row, problems, tz, dst)
    sent = _when(data, "sentAt", row, problems, tz, dst)
    received = _when(data, "receivedAt", row, problems, tz, dst)
    if timestamp is not None:
        return timestamp, "timestamp"
    if original is not None and sent is not None and received is not None:
        return received - (sent - original), "corrected"
    if original is not None:
        return original, "originalTimestamp"
    if received is not None:
        return received, "receivedAt"
    return None, None


def _tags(data: dict, row: int, problems: list[Problem],
          notes: list[Problem]) -> tuple[str, tuple[str, ...], str | None] | None:
    integrations = data.get("integrations")
    vero = integrations.get("Vero") if isinstance(integrations, dict) else None
    tags = vero.get("tags") if isinstance(vero, dict) else None
    if tags is None:
        return None
    column = "integrations.Vero.tags"
    if not isinstance(tags, dict):
        problems.append(Problem(row, column, "invalid_tags", 'must be {"action": "add"|"remove", "values": [...]}'))
        return None
    action, values = tags.get("action"), tags.get("values")
    if action not in ("add", "remove"):
        problems.append(Problem(row, column, "invalid_tags", f"action must be 'add' or 'remove', not {action!r}"))
        return None
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        problems.append(Problem(row, column, "invalid_tags", "values must be a list of non-empty strings"))
        return None
    whose = tags.get("id")
    if whose is not None and _text(whose) is None:
        problems.append(Problem(row, column, "invalid_tags", f"id must be the person's id, not {whose!r}"))
        return None
    return action, tuple(dict.fromkeys(v.strip() for v in values)), _composed(_text(whose), column, row, notes)


def read_message(line: str, row: int, tz: tzinfo = UTC, dst: str | None = None) -> Message | list[Problem]:
    """The message on one line, or why it cannot be read (each problem names the field); times
    written without an offset are in ``tz`` (``dst`` chooses the instant of one its clocks repeat)."""
    if len(line) > MESSAGE_LIMIT and len(line.encode()) > MESSAGE_LIMIT:
        return [Problem(row, None, "message_too_large",
                        f"{len(line.encode()):,} bytes; Segment's limit is {MESSAGE_LIMIT // 1024} KB a message")]
    if "\\u0000" in line or "\0" in line:
        return [Problem(row, None, "nul_character", "the message holds a NUL character (\\u0000), which no "
                                                    "database text column can store")]
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return [Problem(row, None, "invalid_json", f"not JSON: {exc}")]
    if not isinstance(data, dict):
        return [Problem(row, None, "not_a_message", f"a JSON {type(data).__name__}, not a message object")]
    if is_envelope(data):
        # batches are opened by the producer (a file of batches, a batch read whole, a /v1/batch body),
        # never inside one another nor among single messages
        return [Problem(row, "batch", "misplaced_batch", f"a batch of {len(data['batch'])} messages where one "
                        "message belongs: its messages are not read (a file is read as batches a line only "
                        "when its first line is one)")]
    kind = data.get("type")
    kind = kind.strip().lower() if isinstance(kind, str) else kind
    if kind not in TYPES:
        return [Problem(row, "type", "unknown_type", f"{kind!r} is not a Segment call type (one of "
                                                    f"{', '.join(TYPES)})" if kind else "no type")]
    problems: list[Problem] = []
    ts, ts_from = event_time(data, row, problems, tz, dst)
    notes: list[Problem] = []
    message = Message(row, kind, _text(data.get("userId")),
                      _composed(_text(data.get("anonymousId")), "anonymousId", row, notes),
                      _composed(_text(data.get("messageId")), "messageId", row, notes), ts, ts_from, notes=notes)
    message.tags = _tags(data, row, problems, notes)
    for name in ("properties", "traits"):
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(Problem(row, name, "invalid_" + name, f"must be an object, not {type(value).__name__}"))
        elif _too_deep(value):
            problems.append(Problem(row, name, "too_deep", f"nested more than {DEPTH_LIMIT} levels"))
        else:
            setattr(message, name, value)
            if _NAMES_OF.get(kind) == name:
                _long_keys(value, name, row, problems)
    context = data.get("context")
    traits = context.get("traits") if isinstance(context, dict) else None
    if isinstance(traits, dict) and isinstance(traits.get("email"), str) and traits["email"].strip():
        message.context_email = _composed(traits["email"].strip(), "context.traits.email", row, notes)
    if kind == "track":
        message.event = _name(data.get("event"), "event", row, problems, message.notes)
        if message.event is None and not any(p.column == "event" for p in problems):
            problems.append(Problem(row, "event", "missing_event_name", "a track call needs its event name"))
    elif kind in ("page", "screen"):
        message.event = _name(data.get("name"), "name", row, problems, message.notes)
        message.category = _name(data.get("category"), "category", row, problems, message.notes)
    elif kind == "group":
        message.group_id = _text(data.get("groupId"))
        if message.group_id is None:
            problems.append(Problem(row, "groupId", "missing_group_id", "a group call needs its groupId"))
    elif kind == "alias":
        message.previous_id = _composed(_text(data.get("previousId")), "previousId", row, notes)
        if message.previous_id is None:
            problems.append(Problem(row, "previousId", "missing_previous_id", "an alias call needs its previousId"))
    if message.user_id:
        message.user_id = _composed(visible(message.user_id, "userId", row, notes), "userId", row, notes)
    return problems or message


def _long_keys(value: dict, field: str, row: int, problems: list[Problem]) -> None:
    """A ``name_too_long`` problem for each key of ``value`` too long to be a name (:data:`worker.cells.NAME_LIMIT`)."""
    for key in value:
        why = long_name(key)
        if why is not None:
            problems.append(Problem(row, field, "name_too_long", f"the {_WHAT[field]} name {why}"))


def _composed(value: str | None, field: str, row: int, notes: list[Problem]) -> str | None:
    """An identifier or a name in the composed form (NFC) it is compared in (:func:`worker.cells.composed`);
    None for none."""
    if not value:
        return None
    return composed(value, field, row, notes) or None


def _name(value: object, field: str, row: int, problems: list[Problem], notes: list[Problem]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(Problem(row, field, "invalid_" + field, f"must be a string, not {type(value).__name__}"))
        return None
    return _composed(visible(value.strip(), field, row, notes), field, row, notes)
