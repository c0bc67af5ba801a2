"""Anonymous Segment events: held, tied and moved by the pure rules (worker/segment/anonymous.py, plan.py)."""
from __future__ import annotations

from datetime import UTC, datetime

import orjson

from producers import segment
from worker.events import rules
from worker.events.rows import dedupe_key
from worker.segment.anonymous import Link, attach, held, split
from worker.segment.plan import is_event, plan
from worker.spec import ImportSpec

NOW = datetime(2024, 3, 10, 12, tzinfo=UTC).timestamp()
HOUR = 3600.0


def chunk(*messages):
    lines = [orjson.dumps(m).decode() for m in messages]
    return plan(lines, list(range(1, len(lines) + 1)), tz=UTC, now=NOW, clock_skew_s=60)


def spec(import_id="imp", trigger=True, window=72 * 3600):
    return ImportSpec(import_id=import_id, columns=segment.COLUMNS, identifier="id", kind="segment",
                      trigger=trigger, trigger_window_s=window, create_people=True)


def test_anonymous_events_are_held_and_identify_or_alias_carrying_the_id_ties_it():
    out = chunk(
        {"type": "track", "anonymousId": "a1", "event": "Viewed Product", "messageId": "m1"},
        {"type": "page", "anonymousId": "a1", "name": "Pricing"},
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {"plan": "pro"}},
        {"type": "alias", "userId": "u2", "previousId": "a2", "anonymousId": "a3"},
        {"type": "identify", "userId": "u3", "anonymousId": "u3"},  # its own id: nothing to tie
        {"type": "group", "anonymousId": "a1", "groupId": "g"},  # only events are held
    )
    assert [(e.row, e.person, e.name, e.event_id) for e in out.anonymous] == [
        (1, "a1", "Viewed Product", "m1"), (2, "a1", "Viewed Pricing Page", None)]
    assert out.events == []
    assert [(link.row, link.anonymous_id, link.user_id) for link in out.links] == [
        (3, "a1", "u1"), (4, "a3", "u2"), (4, "a2", "u2")]
    assert {r: [p.code for p in ps] for r, _, ps in out.errors} == {6: ["anonymous_message"]}
    # the failure path counts a held event as its events step's row
    assert is_event(orjson.dumps({"type": "track", "anonymousId": "a", "event": "X"}).decode())
    assert not is_event(orjson.dumps({"type": "identify", "anonymousId": "a"}).decode())


def test_an_event_of_a_tied_id_is_the_persons_in_file_order():
    out = chunk(
        {"type": "track", "userId": "u9", "event": "A"},
        {"type": "track", "anonymousId": "a1", "event": "B"},
        {"type": "track", "userId": "u9", "event": "C"},
        {"type": "track", "anonymousId": "a2", "event": "D"},
    )
    mine, kept = split(out.events, out.anonymous, {"a1": "u1"})
    assert [(e.row, e.person, e.person_key) for e in mine] == [(1, "u9", "u9"), (2, "u1", "u1"), (3, "u9", "u9")]
    assert [(e.row, e.person) for e in kept] == [(4, "a2")]


def test_an_event_without_a_message_id_keeps_its_dedupe_key_once_its_id_is_tied():
    # held under the anonymous id the first time, the person's the second: still a duplicate
    [event] = chunk({"type": "track", "anonymousId": "a1", "event": "B", "timestamp": "2024-03-01T10:00:00Z"}).anonymous
    held_key = held(spec(), event, NOW)[0]
    [mine], _ = split([], [event], {"a1": "u1"})
    assert (mine.person, mine.person_key) == ("u1", "u1") and dedupe_key(mine) == held_key


def _held(event_name, hours_ago, import_id="old", trigger=True, row=1):
    [event] = chunk({"type": "track", "anonymousId": "a1", "event": event_name,
                     "timestamp": datetime.fromtimestamp(NOW - hours_ago * HOUR, UTC).isoformat()}).anonymous
    event.row = row
    return held(spec(import_id, trigger), event, NOW - hours_ago * HOUR)[2]


def test_moved_events_are_decided_then_with_their_own_times_and_their_imports_option():
    campaigns = rules.by_event([rules.Campaign("welcome", "Signed Up", 0),
                                rules.Campaign("nudge", "Viewed Product", 48 * 3600)])
    found = {"a1": (None, [_held("Signed Up", 1, row=5), _held("Viewed Product", 10, row=6),
                           _held("Viewed Product", 100, row=7), _held("Signed Up", 1, "passive", trigger=False, row=8)])}
    out = attach([Link(3, "a1", "u1")], found, spec("now"), campaigns, NOW, 60)
    assert out.ties == [("a1", 4, found["a1"][1][-1], "u1")] and out.warnings == []
    bodies = [orjson.loads(b) for b in out.bodies]
    assert [(b["import"], b["row"], b["person"]) for b in bodies] == [
        ("old", 5, {"id": "u1"}), ("old", 6, {"id": "u1"}), ("old", 7, {"id": "u1"}), ("passive", 8, {"id": "u1"})]
    assert bodies[0]["timestamp"] == NOW - HOUR  # their own time, not the merge's
    sent, scheduled, outside, passive = out.outcomes
    assert [a[0] for a in orjson.loads(sent)] == ["sent_now"]
    [(kind, due_ms, _)] = orjson.loads(scheduled)
    assert kind == "scheduled" and due_ms == round((NOW - 10 * HOUR + 48 * 3600) * 1000)
    assert [a[0] for a in orjson.loads(outside)] == ["outside_window"]  # 100 h ago: outside 72 h
    assert passive == rules.PASSIVE


def test_an_anonymous_id_ties_to_one_person():
    found = {"a1": ("u1", []), "a2": (None, [_held("X", 1)])}
    out = attach([Link(1, "a1", "u2"), Link(2, "a2", "u3"), Link(3, "a2", "u4"), Link(4, "a2", "u3")],
                 found, spec(), rules.NO_CAMPAIGNS, NOW, 60)
    assert [(a, n, u) for a, n, _, u in out.ties] == [("a2", 1, "u3")] and len(out.bodies) == 1
    assert [(row, p.code, p.column) for row, p in out.warnings] == [
        (1, "anonymous_id_taken", "anonymousId"), (3, "anonymous_id_taken", "anonymousId")]
    # tied to the same person again: what is held for it moves (nothing, usually)
    again = attach([Link(1, "a1", "u1")], {"a1": ("u1", [_held("Y", 1)])}, spec(), rules.NO_CAMPAIGNS, NOW, 60)
    assert [(a, n, u) for a, n, _, u in again.ties] == [("a1", 1, "u1")] and len(again.bodies) == 1
    assert again.warnings == []
