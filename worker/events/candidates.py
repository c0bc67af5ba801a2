"""Which columns could be a role the header does not name. Pure: no I/O.

An Amplitude export names its event ``event_type``, a Mixpanel export its person
``distinct_id``: neither is read without being told (``distinct_id`` holds device ids
for people not yet identified, ``type`` is as often a product's type). The refusal
names the columns that could be the missing role, likeliest first, with the
``--map`` that reads one.
"""
from __future__ import annotations

from worker.cells import column_letter, header_key

# Names that are an event's name in other tools' exports (Amplitude's event_type, Segment's
# action, activity logs' activity), compared by header_key; then any name holding these words.
_EVENT_NAMES = ("eventtype", "eventaction", "action", "actiontype", "actionname", "activity", "activitytype",
                "activityname", "type", "eventkind", "kind", "verb")
_EVENT_WORDS = ("event", "action", "activity")
# Words of columns that hold something else about the event: its time, id, properties, counts.
_NOT_A_NAME = ("time", "date", "propert", "param", "attribute", "count", "value", "data", "sequence", "version")
# Words of a column that identifies a person in other tools' exports (Mixpanel's distinct_id).
_PERSON_WORDS = ("user", "customer", "distinct", "person", "member", "account", "contact", "client", "profile")


def _listed(found: list[int], cells: tuple[str, ...], what: str, role: str) -> str:
    if not found:
        return ""
    best, others = found[0], found[1:4]
    also = f" (or {', '.join(repr(cells[i]) for i in others)})" if others else ""
    return (f"; column {column_letter(best)} {cells[best]!r} could be {what}{also}: "
            f"--map '{cells[best]}={role}'")


def event_name_hint(cells: tuple[str, ...], excluded: set[int]) -> str:
    """"; column C 'event_type' could be the event's name ...: --map 'event_type=event_name'", or ""
    when no column looks like one. ``excluded``: columns that have a role, or are left out."""
    keys = {i: header_key(c) for i, c in enumerate(cells) if c and i not in excluded}
    exact = [i for i, k in keys.items() if k in _EVENT_NAMES]
    loose = [i for i, k in keys.items() if i not in exact and any(w in k for w in _EVENT_WORDS)
             and not k.endswith("id") and not any(w in k for w in _NOT_A_NAME)]
    exact.sort(key=lambda i: _EVENT_NAMES.index(keys[i]))
    return _listed(exact + loose, cells, "the event's name", "event_name")


def person_hint(cells: tuple[str, ...]) -> str:
    """"; column B 'distinct_id' could be the person's id ...: --map 'distinct_id=id'", or "" when no
    column looks like one."""
    found = [i for i, c in enumerate(cells) if c and (key := header_key(c)).endswith("id")
             and any(w in key for w in _PERSON_WORDS)]
    return _listed(found, cells, "the person's id", "id")
