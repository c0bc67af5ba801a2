"""The Vero destination's rules for Segment messages: reading a message, what each call does, and the
directory's alias and tag changes. Pure: no Redis."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest

from worker.people.directory import Rules, Snapshot, apply_rows
from worker.segment.messages import DEPTH_LIMIT, MESSAGE_LIMIT, Message, read_message
from worker.segment.plan import event_name, is_event, plan

NOW = datetime(2024, 3, 10, tzinfo=UTC).timestamp()


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def line(**fields) -> str:
    return orjson.dumps(fields).decode()


def codes(result) -> list[str]:
    assert isinstance(result, list), result
    return [p.code for p in result]


def test_times_follow_segments_clock_skew_rule():
    given = read_message(line(type="track", userId="u", event="E", timestamp="2024-03-01T10:00:00Z",
                              originalTimestamp="2020-01-01T00:00:00Z"), 1)
    assert (given.ts, given.ts_from) == (ts("2024-03-01T10:00:00+00:00"), "timestamp")
    # the client's clock is 5 s ahead of the server's: sentAt - receivedAt; the event keeps the server's time
    skewed = read_message(line(type="track", userId="u", event="E", originalTimestamp="2024-03-01T10:00:05Z",
                               sentAt="2024-03-01T10:00:10Z", receivedAt="2024-03-01T10:00:06Z"), 2)
    assert (skewed.ts, skewed.ts_from) == (ts("2024-03-01T10:00:01+00:00"), "corrected")
    original = read_message(line(type="track", userId="u", event="E", originalTimestamp="2024-03-01T10:00:05Z"), 3)
    assert original.ts_from == "originalTimestamp"
    received = read_message(line(type="track", userId="u", event="E", receivedAt="2024-03-01T10:00:06Z"), 4)
    assert received.ts_from == "receivedAt"
    none = read_message(line(type="track", userId="u", event="E"), 5)
    assert (none.ts, none.ts_from) == (None, None)
    naive = read_message(line(type="track", userId="u", event="E", timestamp="2024-03-01T10:00:00"), 6)
    assert naive.ts == ts("2024-03-01T10:00:00+00:00")


def test_a_naive_segment_time_the_zones_clocks_skip_or_repeat_says_so():
    new_york = ZoneInfo("America/New_York")
    skipped = read_message(line(type="track", userId="u", event="E", timestamp="2024-03-10T02:30:00"), 1, new_york)
    assert [(p.column, p.code) for p in skipped] == [("timestamp", "invalid_time")]
    assert "does not exist in America/New_York: clocks went forward from 02:00 to 03:00" in skipped[0].message
    repeated = line(type="track", userId="u", event="E", timestamp="2024-11-03T01:30:00")
    assert codes(read_message(repeated, 2, new_york)) == ["ambiguous_time"]
    assert read_message(repeated, 2, new_york, "later").ts == ts("2024-11-03T06:30:00+00:00")
    assert read_message(line(type="track", userId="u", event="E", timestamp="2024-03-01t10:00:00z"), 3).ts == \
        ts("2024-03-01T10:00:00+00:00")


@pytest.mark.parametrize("text, code", [
    ("not json", "invalid_json"),
    ("[1, 2]", "not_a_message"),
    (line(type="purchase", userId="u"), "unknown_type"),
    (line(userId="u", event="E"), "unknown_type"),
    (line(type="track", userId="u", event="E", properties={"x": "a" * MESSAGE_LIMIT}), "message_too_large"),
    (line(type="track", userId="u", event="E\u0000"), "nul_character"),
    (line(type="track", userId="u", event="E", properties="flat"), "invalid_properties"),
    (line(type="identify", userId="u", traits=[1]), "invalid_traits"),
    (line(type="track", userId="u", event=""), "missing_event_name"),
    (line(type="track", userId="u", event=7), "invalid_event"),
    (line(type="track", userId="u", event="E", timestamp="yesterday"), "invalid_time"),
    (line(type="group", userId="u"), "missing_group_id"),
    (line(type="alias", userId="u"), "missing_previous_id"),
    (line(type="identify", userId="u", integrations={"Vero": {"tags": {"action": "tag", "values": ["a"]}}}),
     "invalid_tags"),
    (line(type="identify", userId="u", integrations={"Vero": {"tags": {"action": "add", "values": [""]}}}),
     "invalid_tags"),
])
def test_unreadable_messages_are_row_errors_with_their_code(text, code):
    assert code in codes(read_message(text, 7))


def test_nesting_past_the_limit_is_refused_and_up_to_it_is_read():
    deep: dict = {}
    inner = deep
    for _ in range(DEPTH_LIMIT):
        inner["x"] = {}
        inner = inner["x"]
    assert isinstance(read_message(line(type="track", userId="u", event="E", properties=deep), 1), Message)
    inner["x"] = {"y": 1}
    assert codes(read_message(line(type="track", userId="u", event="E", properties=deep), 1)) == ["too_deep"]


def test_pages_and_screens_are_named_as_segments_destinations_name_them():
    def named(**fields):
        return event_name(read_message(line(userId="u", **fields), 1))

    assert named(type="page", name="Pricing") == "Viewed Pricing Page"
    assert named(type="page", name="Pricing", category="Docs") == "Viewed Docs Pricing Page"
    assert named(type="page") == "Loaded a Page"
    assert named(type="screen", name="Home") == "Viewed Home Screen"
    assert named(type="screen") == "Loaded a Screen"
    assert named(type="screen", category="Onboarding") == "Viewed Onboarding Screen"
    assert named(type="track", event="Signed Up") == "Signed Up"


def test_invisible_characters_are_removed_with_a_warning():
    message = read_message(line(type="track", userId="u\u200b1", event="Signed\u200b Up"), 1)
    assert (message.user_id, message.event) == ("u1", "Signed Up")
    assert [p.code for p in message.notes] == ["invisible_characters", "invisible_characters"]


def chunk(*messages):
    lines = [line(**m) for m in messages]
    return plan(lines, list(range(1, len(lines) + 1)), tz=UTC, now=NOW, clock_skew_s=60)


def test_every_line_is_an_event_a_counted_change_or_an_error_once():
    out = chunk(
        dict(type="identify", userId="u1", traits={"email": "a@example.com", "plan": "pro"}),
        dict(type="track", userId="u1", event="Bought", messageId="m1", properties={"total": 5}),
        dict(type="page", userId="u1", name="Home"),
        dict(type="group", userId="u1", groupId="g1", traits={"name": "Acme"}),
        dict(type="alias", userId="u9", previousId="u1"),
        dict(type="track", userId="u1", event="Unsubscribe", properties={"id": "u7"}),
        dict(type="track", anonymousId="a1", event="Bought"),
        dict(type="identify", anonymousId="a1", traits={"plan": "x"}),
        dict(type="group", groupId="g"),
    )
    counted = [op.row for op in out.ops if op.counted]
    rows = sorted([e.row for e in out.events + out.anonymous] + counted + [r for r, _, _ in out.errors])
    assert rows == list(range(1, 10))
    assert [e.name for e in out.events] == ["Bought", "Viewed Home Page"]
    assert out.events[0].event_id == "m1" and out.events[0].data == {"total": 5}
    assert [(e.row, e.person, e.name) for e in out.anonymous] == [(7, "a1", "Bought")]
    assert {r: [p.code for p in ps] for r, _, ps in out.errors} == {8: ["anonymous_message"], 9: ["missing_user_id"]}
    ops = {op.row: op for op in out.ops}
    assert (ops[1].id, ops[1].email, ops[1].set) == ("u1", "a@example.com", {"plan": "pro"})
    assert orjson.loads(ops[4].set["group"]) == {"id": "g1", "name": "Acme"}
    assert (ops[5].id, ops[5].alias_of) == ("u9", "u1")
    assert (ops[6].id, ops[6].set) == ("u7", {"unsubscribed": "true"})
    assert [is_event(line(type="track", userId="u", event="E")), is_event("nonsense"),
            is_event(line(type="track", userId="u", event="Unsubscribe"))] == [True, False, False]


def test_identify_rules_for_ids_emails_and_traits():
    out = chunk(
        dict(type="identify", userId="ann@example.com"),
        dict(type="identify", traits={"email": "bo@example.com"}),
        dict(type="identify", userId="u3", traits={"createdAt": "2024-01-02T00:00:00Z", "unsubscribed": False,
                                                  "age": 41, "tags": ["a"], "gone": None, "id": "u3"}),
        dict(type="identify", userId="u4", traits={"created_at": "soon"}),
        dict(type="identify", userId="u5", traits={"unsubscribed": "no"}),
    )
    ops = {op.row: op for op in out.ops}
    assert (ops[1].id, ops[1].email) == ("ann@example.com", "ann@example.com")
    assert (ops[2].id, ops[2].email) == ("bo@example.com", "bo@example.com")
    assert [(r, [p.code for p in ps]) for r, _, ps in out.warnings] == [(2, ["email_as_id"])]
    assert ops[3].set == {"created_at": str(int(ts("2024-01-02T00:00:00+00:00"))), "unsubscribed": "false",
                          "age": "41", "tags": '["a"]'}
    assert ops[3].clear == ("gone",)
    assert {r: [p.code for p in ps] for r, _, ps in out.errors} == {4: ["invalid_time"], 5: ["invalid_boolean"]}


def test_tags_ride_on_the_call_or_name_their_own_person():
    out = chunk(
        dict(type="identify", userId="u1", integrations={"Vero": {"tags": {"action": "add", "values": ["a", "b"]}}}),
        dict(type="identify", userId="u1", integrations={"Vero": {"tags": {"id": "u2", "action": "remove",
                                                                             "values": ["a"]}}}),
        dict(type="track", userId="u1", event="E", context={"traits": {"email": "u1@example.com"}},
             integrations={"Vero": {"tags": {"action": "add", "values": ["c"]}}}),
    )
    assert [(op.row, op.id, op.tags_add, op.tags_remove, op.counted) for op in out.ops] == [
        (1, "u1", ("a", "b"), (), True),
        (2, "u1", (), (), True), (2, "u2", (), ("a",), False),
        (3, "u1", ("c",), (), False),  # the track's e-mail and tags: one change riding on the event
    ]
    assert out.ops[3].email == "u1@example.com"


def test_a_future_event_is_recorded_with_a_warning():
    out = chunk(dict(type="track", userId="u", event="E", timestamp="2030-01-01T00:00:00Z"))
    assert len(out.events) == 1 and [p.code for p in out.warnings[0][2]] == ["future_time"]


RULES = Rules("all", False, "id", 1_700_000_000, segment=True)


def apply(messages, snap: Snapshot | None = None):
    out = chunk(*messages)
    snap = snap or Snapshot()
    snap.new_ids = snap.new_ids or [f"c{n}" for n in range(1, 10)]
    return apply_rows(out.ops, snap, RULES)


def known(*people: dict) -> Snapshot:
    snap = Snapshot()
    for person in people:
        snap.people[person["cio_id"]] = dict(person, _v="1")
        if "id" in person:
            snap.by_id[person["id"]] = person["cio_id"]
        if "email" in person:
            snap.by_email[person["email"].lower()] = person["cio_id"]
    return snap


def test_alias_re_identifies_the_person_and_the_old_id_still_finds_them():
    changes = apply([dict(type="alias", previousId="anon-1", userId="u1")], known({"cio_id": "k1", "id": "anon-1"}))
    assert changes.errors == [] and changes.created == 0
    assert changes.people["k1"][1]["id"] == "u1"
    assert changes.index[("id", "u1")] == ("", "k1") and ("id", "anon-1") not in changes.index


def test_alias_from_an_e_mail_and_alias_of_nobody_yet():
    by_email = apply([dict(type="alias", previousId="Ann@Example.com", userId="u1")],
                     known({"cio_id": "k1", "email": "ann@example.com"}))
    assert by_email.people["k1"][1]["id"] == "u1" and by_email.errors == []
    fresh = apply([dict(type="alias", previousId="old", userId="u1")])
    assert fresh.created == 1 and fresh.people["c1"][1]["id"] == "u1"
    assert fresh.index[("id", "old")] == ("", "c1") and fresh.index[("id", "u1")] == ("", "c1")


def test_alias_never_merges_two_people():
    changes = apply([dict(type="alias", previousId="a", userId="b")],
                    known({"cio_id": "k1", "id": "a"}, {"cio_id": "k2", "id": "b"}))
    assert [p.code for _, ps in changes.errors for p in ps] == ["alias_conflict"] and changes.people == {}


def test_tags_add_and_remove_and_identify_may_change_an_email():
    changes = apply([
        dict(type="identify", userId="u1", traits={"email": "new@example.com"},
             integrations={"Vero": {"tags": {"action": "add", "values": ["b", "a"]}}}),
        dict(type="identify", userId="u1", integrations={"Vero": {"tags": {"action": "remove", "values": ["b"]}}}),
    ], known({"cio_id": "k1", "id": "u1", "email": "old@example.com"}))
    state = changes.people["k1"][1]
    assert state["email"] == "new@example.com" and state["tags"] == '["a"]'
    assert changes.index[("email", "old@example.com")] == ("k1", "")
    assert changes.imported == 2 and changes.warnings == []


def test_a_change_riding_on_an_event_warns_instead_of_failing_the_row():
    changes = apply([dict(type="track", userId="u1", event="E", context={"traits": {"email": "b@example.com"}})],
                    known({"cio_id": "k1", "id": "u1"}, {"cio_id": "k2", "email": "b@example.com"}))
    assert changes.imported == 0 and changes.errors == []
    assert [p.code for _, ps in changes.warnings for p in ps] == ["identifier_conflict"]


def test_an_email_beside_an_event_fills_in_but_never_replaces():
    changes = apply([dict(type="track", userId="u1", event="E", context={"traits": {"email": "b@example.com"}}),
                     dict(type="track", userId="u2", event="E", context={"traits": {"email": "c@example.com"}})],
                    known({"cio_id": "k1", "id": "u1", "email": "a@example.com"}, {"cio_id": "k2", "id": "u2"}))
    assert "k1" not in changes.people and changes.people["k2"][1]["email"] == "c@example.com"
    assert [(r, p.code) for r, ps in changes.warnings for p in ps] == [(1, "email_differs")]


def test_what_a_review_found_stays_fixed():
    # an identify naming another person's e-mail does not quietly change that person
    changes = apply([dict(type="identify", userId="u2", traits={"email": "a@example.com", "plan": "x"})],
                    known({"cio_id": "k1", "id": "u1", "email": "a@example.com"}))
    assert changes.people == {} and [p.code for _, ps in changes.errors for p in ps] == ["failed_attribute_change"]
    # tags ride on an alias; a failed alias's tags for someone else do nothing
    tagged = apply([dict(type="alias", previousId="u1", userId="c1",
                         integrations={"Vero": {"tags": {"action": "add", "values": ["x"]}}})],
                   known({"cio_id": "k1", "id": "u1"}))
    assert tagged.people["k1"][1]["tags"] == '["x"]'
    refused = apply([dict(type="alias", previousId="a", userId="b",
                          integrations={"Vero": {"tags": {"id": "z", "action": "add", "values": ["x"]}}})],
                    known({"cio_id": "k1", "id": "a"}, {"cio_id": "k2", "id": "b"}))
    assert refused.people == {} and refused.created == 0
    # e-mails are checked; ids that are no ids are refused, not read as the sender
    out = chunk(dict(type="identify", userId="u", traits={"email": "not-an-email"}),
                dict(type="track", userId="u", event="Unsubscribe", properties={"id": {"x": 1}}),
                dict(type="identify", userId="u", integrations={"Vero": {"tags": {"id": [1], "action": "add",
                                                                                    "values": ["a"]}}}),
                dict(type="track", userId="u", event="E", context={"traits": {"email": "nope"}}))
    assert {r: [p.code for p in ps] for r, _, ps in out.errors} == {
        1: ["invalid_email"], 2: ["invalid_id"], 3: ["invalid_tags"]}
    assert [(r, [p.code for p in ps]) for r, _, ps in out.warnings] == [(4, ["invalid_email"])]
    assert len(out.events) == 1 and out.ops == []


def test_alias_types_are_read_as_the_worker_reads_them():
    from producers.segment import is_alias

    assert is_alias(['{"type": " Alias ", "userId": "b", "previousId": "a"}'])
    assert is_alias(['{"type": "\\u0061lias", "userId": "b", "previousId": "a"}'])
    assert not is_alias(['{"type": "track", "event": "alias me"}']) and not is_alias(["not json alias"])
