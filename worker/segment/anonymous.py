"""Anonymous events: held until an identify or alias ties their anonymous id to a person. Pure.

A track, page or screen call with an ``anonymousId`` and no ``userId`` names nobody yet. When
the anonymous id is already tied to a person (an earlier identify or alias carried it), the
event is that person's (:func:`split`). Otherwise it is **held**: deduped like any event (by
``messageId``, else its content), counted as imported and as ``anonymous_stored``, triggering
nothing (:func:`held`). An identify or alias carrying the anonymous id (an alias also ties its
``previousId``) ties it to the person: the held events become the person's, and the trigger
rules apply to them then, with their own timestamps (the window and the delays as for any
event), under the trigger option of the import that held them (:func:`attach`). An anonymous
id ties to one person: a second person naming it gets a warning and nothing moves.
"""
from __future__ import annotations

import dataclasses

import orjson

from worker.events import rules
from worker.events.chunk import NO_KEY, encode_event
from worker.events.rows import Event, dedupe_key
from worker.problems import Problem
from worker.spec import ImportSpec

#: The person-key prefix of a held event's content key (an anonymous id is not a person's id).
PERSON_KEY = "anonymous\0"


@dataclasses.dataclass(slots=True)
class Link:
    """An identify or alias (on ``row``) tying ``anonymous_id`` to the person ``user_id``."""

    row: int
    anonymous_id: str
    user_id: str


@dataclasses.dataclass(slots=True)
class Attach:
    """What a chunk's person step ties and moves (people_commit.lua's anonymous section)."""

    #: (anonymous id, how many held events were read, the last of them or b"", user id) of each id tied
    #: in this chunk (the commit checks both: a list that expired and was held anew differs)
    ties: list[tuple[str, int, bytes, str]] = dataclasses.field(default_factory=list)
    #: the moved events as the person's: their JSONs and trigger outcomes (:func:`encode_event`)
    bodies: list[bytes] = dataclasses.field(default_factory=list)
    outcomes: list[bytes | str] = dataclasses.field(default_factory=list)
    #: (row, problem) warnings of the identify or alias rows
    warnings: list[tuple[int, Problem]] = dataclasses.field(default_factory=list)
    #: user id -> cio_id of the people the ids are tied to (the outbox carries them: the database keeps
    #: an anonymous id as one of its person's identifiers, and the moved events with their person's key)
    owners: dict[str, str] = dataclasses.field(default_factory=dict)


def anonymous_event(row: int, anonymous_id: str, name: str, ts: float | None, message_id: str | None,
                    properties: dict) -> Event:
    """The event of an anonymous call (its ``person`` is the anonymous id)."""
    return Event(row, anonymous_id, PERSON_KEY + anonymous_id, name, ts, message_id, properties)


def split(events: list[Event], anonymous: list[Event], tied: dict[str, str]) -> tuple[list[Event], list[Event]]:
    """(the events to commit as people's, the events to hold): an anonymous event whose id is
    ``tied`` (anonymous id -> user id) is that person's, in file order with the others."""
    mine = [dataclasses.replace(e, person=tied[e.person], person_key=tied[e.person], dedupe_as=e.person_key)
            for e in anonymous if e.person in tied]
    if mine:
        events = sorted(events + mine, key=lambda e: e.row)
    return events, [e for e in anonymous if e.person not in tied]


def held(spec: ImportSpec, event: Event, now: float) -> tuple[bytes, str, bytes]:
    """(dedupe key, anonymous id, JSON to hold) of an event held for its anonymous id: what
    :func:`attach` needs later (its import and row, its trigger option, its own time)."""
    body: dict = {"import": spec.import_id, "row": event.row, "name": event.name, "anonymous_id": event.person,
                  "timestamp": event.ts if event.ts is not None else now, "data": event.data,
                  "trigger": spec.trigger, "window_s": spec.trigger_window_s}
    if event.event_id is not None:
        body["id"] = event.event_id
    return dedupe_key(event) or NO_KEY, event.person, orjson.dumps(body)


def attach(links: list[Link], found: dict[str, tuple[str | None, list[bytes]]], spec: ImportSpec,
           campaigns: rules.CampaignIndex, now: float, clock_skew_s: float) -> Attach:
    """Tie each link's anonymous id to its person and move the events held for it, in file order.

    ``found``: per anonymous id, (the user id it is tied to already or None, its held events).
    An id tied to the same person again moves what is held (nothing, usually); tied to another
    person: a warning, nothing moves.
    """
    out = Attach()
    tied = {anon: user for anon, (user, _) in found.items() if user is not None}
    moved: set[str] = set()  # the ids tied by this chunk (their events moved then)
    origins: dict[tuple, ImportSpec] = {}  # the rules of each import that held events, made once
    for link in links:
        owner = tied.get(link.anonymous_id)
        if owner is not None and owner != link.user_id:
            out.warnings.append((link.row, Problem(
                link.row, "anonymousId", "anonymous_id_taken",
                f"anonymous id {link.anonymous_id!r} is tied to {owner!r} already: its events stay theirs")))
            continue
        if link.anonymous_id in moved:
            continue
        tied[link.anonymous_id] = link.user_id
        moved.add(link.anonymous_id)
        events = found.get(link.anonymous_id, (None, []))[1]
        out.ties.append((link.anonymous_id, len(events), events[-1] if events else b"", link.user_id))
        for raw in events:
            body = orjson.loads(raw)
            event = Event(body["row"], link.user_id, link.user_id, body["name"], body["timestamp"], body.get("id"),
                          body["data"])
            # The rules as the import that held the event asked for them, decided now.
            options = (body["import"], body["trigger"], body["window_s"])
            origin = origins.get(options)
            if origin is None:
                origin = origins[options] = dataclasses.replace(spec, import_id=options[0], identifier="id",
                                                                trigger=options[1], trigger_window_s=options[2])
            _, encoded, outcome, _ = encode_event(origin, event, campaigns, now, clock_skew_s)
            out.bodies.append(encoded)
            out.outcomes.append(outcome)
    return out
