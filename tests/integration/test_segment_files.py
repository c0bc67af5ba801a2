"""Segment archives imported end to end: real files (gzipped NDJSON, arrays, batch objects), real workers,
checked against an oracle that applies the Vero destination's rules in file order."""
from __future__ import annotations

import dataclasses
import gzip
import time
from datetime import UTC, datetime

import orjson
import pytest

from tests.segment_data import messages, write_archive
from worker import keys
from worker.settings import get_settings

from .helpers import clear_keys, counted_once, drain_all, outbox_events, run_import, write


def test_an_archive_imports_with_exact_counts_and_the_oracles_people(store, workers, tmp_path):
    # 100,000 messages in 2,000-message chunks (the session's 50-row chunks would make 2,000 of them)
    lines, ex = messages(100_000, seed=11, people=2000)
    settings = dataclasses.replace(get_settings(), chunk_rows=2000)
    report = run_import(write_archive(tmp_path / "archive.ndjson.gz", lines), timeout=300, settings=settings)
    assert report["kind"] == "segment" and counted_once(report)
    assert (report["rows"], report["imported"], report["duplicates"], report["errors"]) == \
        (ex.rows, ex.imported, ex.duplicates, ex.errors)
    events = outbox_events(store, report["import_id"])
    names: dict[str, int] = {}
    for event in events:
        names[event["name"]] = names.get(event["name"], 0) + 1
    assert names == ex.events
    # anonymous events: those never tied are still held; the others moved (or were tied already)
    assert report["anonymous_stored"] - report["anonymous_merged"] == ex.held_left > 0
    assert report["anonymous_merged"] > 0
    assert {anon: store.r.hget(keys.ANONYMOUS_LINKS, anon).decode() for anon in ex.tied} == ex.tied
    # every identifier the file used finds its person, who has the oracle's id, plan, tags and opt-out
    for uid, person in ex.current.items():
        found = store.people.find(uid, "id")
        if found is None:
            assert uid not in ex.plan and person not in ex.plan
            continue
        assert found["id"] == person, uid
        assert found.get("a:plan") == ex.plan.get(person), uid
        assert set(orjson.loads(found.get("tags", "[]"))) == ex.tags.get(person, set()), uid
        assert (found.get("unsubscribed") == "true") == (person in ex.unsubscribed), uid
    # imported again: every event is a duplicate by its messageId, every person change applies again
    again = run_import(write_archive(tmp_path / "again.ndjson.gz", lines), timeout=300, settings=settings)
    events_rows = sum(ex.events.values()) + ex.held_left
    assert (again["duplicates"], again["imported"]) == (ex.duplicates + events_rows, ex.imported - events_rows)
    assert (again["anonymous_stored"], again["anonymous_merged"]) == (0, 0)


SMALL = [
    {"type": "identify", "userId": "u1", "traits": {"email": "ann@example.com", "plan": "pro"},
     "integrations": {"Vero": {"tags": {"action": "add", "values": ["vip"]}}}, "messageId": "a"},
    {"type": "track", "userId": "u1", "event": "Bought", "messageId": "b", "timestamp": "2024-03-01T10:00:00Z",
     "properties": {"total": 5.5}},
    {"type": "alias", "previousId": "u1", "userId": "c1", "messageId": "c"},
    {"type": "track", "userId": "u1", "event": "Bought", "messageId": "d", "timestamp": "2024-03-01T11:00:00Z"},
    {"type": "page", "userId": "c1", "name": "Pricing", "messageId": "e", "timestamp": "2024-03-01T12:00:00Z"},
]


def test_lines_arrays_and_batch_objects_give_the_same_store(store, workers, tmp_path):
    forms = {
        "lines.jsonl": "\n".join(orjson.dumps(m).decode() for m in SMALL) + "\n",
        "array.json": orjson.dumps(SMALL, option=orjson.OPT_INDENT_2).decode(),
        "batch.json": orjson.dumps({"batch": SMALL, "sentAt": "2024-03-01T12:00:00Z"},
                                   option=orjson.OPT_INDENT_2).decode(),
    }
    seen = []
    for name, text in forms.items():
        clear_keys(store.r)
        report = run_import(write(tmp_path, name, text))
        assert (report["rows"], report["imported"], report["errors"]) == (5, 5, 0), name
        person = store.people.find("u1", "id")
        person.pop("created_at")  # when it was processed
        cio = person.pop("cio_id")  # a new one each time: a cio_id is never given twice, Redis cleared or not
        assert store.people.find("c1", "id")["cio_id"] == cio
        events = [(e["name"], e["row"], e["person"], e["timestamp"], e.get("id"))
                  for e in outbox_events(store, report["import_id"])]
        seen.append((person, sorted(events)))
    assert seen[0] == seen[1] == seen[2]
    person, events = seen[0]
    # the alias kept the person: both ids find them, their attributes, tags and events stayed
    assert person["id"] == "c1" and person["a:plan"] == "pro" and person["tags"] == '["vip"]'
    assert [e[0] for e in events] == ["Bought", "Bought", "Viewed Pricing Page"]


def test_a_key_too_long_to_be_a_name_is_a_row_error_and_the_others_import(store, workers, tmp_path):
    long_key = "How likely are you to recommend us to a friend or colleague? " * 3  # 183 bytes
    report = run_import(write(tmp_path, "survey.jsonl", "\n".join(orjson.dumps(m).decode() for m in [
        SMALL[0],
        {"type": "track", "userId": "u1", "event": "Answered", "messageId": "s1", "properties": {long_key: 9}},
        {"type": "identify", "userId": "u1", "traits": {long_key: "9"}},
        SMALL[1],
    ]) + "\n"))
    assert (report["rows"], report["imported"], report["errors"]) == (4, 2, 2) and counted_once(report)
    errors = {p["row"]: p for p in store.imports.problems(report["import_id"], "errors")}
    assert sorted(errors) == [2, 3]
    assert "the property name 'How likely are you to recommend us to a '... is 183 bytes" in errors[2]["problems"][0]
    assert "the trait name" in errors[3]["problems"][0]
    assert f"a:{long_key}" not in store.people.find("u1", "id")


def _phone_batches(clock_behind_s: float, received: float) -> list[dict]:
    """Two /v1/batch bodies from a phone whose clock is ``clock_behind_s`` behind, as a log of requests
    holds them: ``sentAt`` on the envelope only (Segment's libraries put it there), the device's context
    once on the envelope (the batch API merges it into each call); the calls made 120, 90, 60 and 30 s
    before their batch left, which Segment's servers stamped ``receivedAt`` when it arrived."""
    def phone(seconds_before_received: float) -> str:
        return datetime.fromtimestamp(received - seconds_before_received - clock_behind_s, UTC).isoformat()

    stamped = datetime.fromtimestamp(received, UTC).isoformat()
    context = {"library": {"name": "analytics-ios", "version": "4.1.8"}, "os": {"name": "iOS"},
               "traits": {"email": "zoe@example.com"}}
    return [
        {"batch": [{"type": "identify", "userId": "z1", "traits": {"plan": "pro"}, "messageId": "p1",
                    "originalTimestamp": phone(120), "receivedAt": stamped},
                   {"type": "track", "userId": "z1", "event": "Opened App", "messageId": "p2",
                    "originalTimestamp": phone(90), "receivedAt": stamped, "context": {"app": {"build": "17"}}},
                   {"type": "screen", "userId": "z1", "name": "Home", "messageId": "p3",
                    "originalTimestamp": phone(60), "receivedAt": stamped}],
         "sentAt": phone(0), "context": context, "writeKey": "ios-key"},
        {"batch": [{"type": "track", "userId": "z1", "event": "Bought", "messageId": "p4",
                    "originalTimestamp": phone(30), "receivedAt": stamped}],
         "sentAt": phone(0), "context": context, "writeKey": "ios-key"},
    ]


@pytest.mark.parametrize("name", ["bodies.ndjson.gz", "batch.json"])
def test_a_batchs_sent_at_corrects_a_device_clock_that_is_off(store, workers, tmp_path, name):
    received = datetime(2024, 3, 1, 10, 0, tzinfo=UTC).timestamp()
    bodies = _phone_batches(7 * 60, received)
    if name == "batch.json":  # one body, as a capture of a single request holds it
        text = orjson.dumps(bodies[0], option=orjson.OPT_INDENT_2).decode()
    else:
        text = "".join(orjson.dumps(body).decode() + "\n" for body in bodies)
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    count = 4 if name.endswith(".gz") else 3
    report = run_import(path)
    assert (report["rows"], report["imported"], report["errors"]) == (count, count, 0) and counted_once(report)
    events = sorted((e["row"], e["name"], e["timestamp"]) for e in outbox_events(store, report["import_id"]))
    # receivedAt - (sentAt - originalTimestamp): when the calls were made by Segment's clock, not 7 min earlier
    expected = [(2, "Opened App", received - 90), (3, "Viewed Home Screen", received - 60),
                (4, "Bought", received - 30)]
    assert events == expected[:count - 1]
    # the envelope's context lies under each message's: its e-mail is the person's
    person = store.people.find("z1", "id")
    assert (person["email"], person["a:plan"]) == ("zoe@example.com", "pro")


def test_the_cli_imports_an_archive_and_a_sink_stores_tags(backfill, store, tmp_path):
    from worker.sink.sqlite import SQLiteResults
    from worker.store.outbox import Outbox

    path = tmp_path / "export.json.gz"
    path.write_bytes(gzip.compress("\n".join(orjson.dumps(m).decode() for m in SMALL).encode()))
    shown = backfill("inspect", str(path))
    assert shown.returncode == 0 and b"segment" in shown.stdout and b"rows        5" in shown.stdout
    done = backfill("import", str(path), "--wait", "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["imported"] == 5
    results = SQLiteResults(tmp_path / "results.db")
    results.upgrade()
    outbox = Outbox(store.r, "sink-segment")
    outbox.ensure_group()
    drain_all(outbox, results)
    [person] = results.people("id", "c1")
    assert person["tags"] == ["vip"] and person["attributes"] == {"plan": "pro"}


def _lines(*messages) -> str:
    return "".join(orjson.dumps(m).decode() + "\n" for m in messages)


def test_anonymous_events_wait_for_an_identify_in_a_later_import_then_trigger_by_their_own_times(
        store, workers, tmp_path):
    from producers.api import undo_import
    from worker.errors import ConfigError
    from worker.events.rules import Campaign
    from worker.sink.sqlite import SQLiteResults
    from worker.sink.stored import EventQuery
    from worker.store.outbox import Outbox

    store.triggers.add_campaign(Campaign("welcome", "Signed Up", 0))
    store.triggers.add_campaign(Campaign("nudge", "Viewed Product", 48 * 3600))
    now = time.time()

    def at(hours_ago: float) -> str:
        return datetime.fromtimestamp(now - hours_ago * 3600, UTC).isoformat()

    visits = run_import(write(tmp_path, "visits.ndjson", _lines(
        {"type": "track", "anonymousId": "v1", "event": "Signed Up", "messageId": "s1", "timestamp": at(1)},
        {"type": "track", "anonymousId": "v1", "event": "Viewed Product", "messageId": "s2", "timestamp": at(10)},
        {"type": "page", "anonymousId": "v2", "name": "Pricing", "messageId": "s3", "timestamp": at(2)},
        {"type": "track", "anonymousId": "v1", "event": "Signed Up", "messageId": "s1", "timestamp": at(1)},
    )), trigger=True)
    assert (visits["imported"], visits["duplicates"], visits["errors"]) == (3, 1, 0) and counted_once(visits)
    assert (visits["anonymous_stored"], visits["anonymous_merged"]) == (3, 0)
    assert outbox_events(store, visits["import_id"]) == [] and not store.triggers.deliveries()
    assert store.people.find("v1", "id") is None  # an anonymous id is nobody

    login_file = write(tmp_path, "login.ndjson", _lines(
        {"type": "identify", "userId": "u1", "anonymousId": "v1", "traits": {"plan": "pro"}, "messageId": "l1"},
        {"type": "track", "anonymousId": "v1", "event": "Added to Cart", "messageId": "l2", "timestamp": at(0)},
        {"type": "identify", "userId": "u2", "anonymousId": "v1", "messageId": "l3"},
        {"type": "track", "anonymousId": "v1", "event": "Browsed", "timestamp": at(0)},  # no messageId
    ))
    login = run_import(login_file)
    # (rows 2 and 4 are held by the chunk's events step, then moved by its person step: counted in both)
    assert (login["imported"], login["warnings"], login["anonymous_stored"], login["anonymous_merged"]) == (4, 1, 2, 4)
    assert "anonymous_id_taken" in "".join(login["_handle"].problems_csv("warnings"))
    moved = sorted((e["import"], e["row"], e["name"], e["person"]["id"], e["timestamp"])
                   for e in outbox_events(store, login["import_id"]))
    assert [m[:4] for m in moved] == [(visits["import_id"], 1, "Signed Up", "u1"),
                                      (visits["import_id"], 2, "Viewed Product", "u1"),
                                      (login["import_id"], 2, "Added to Cart", "u1"),
                                      (login["import_id"], 4, "Browsed", "u1")]
    assert [abs(m[4] - (now - hours * 3600)) < 1 for m, hours in zip(moved, (1, 10, 0, 0))] == [True] * 4
    # the rules applied when they moved, with their own times and the option of the import that held them
    assert [(d["campaign"], d["person"]) for d in store.triggers.deliveries()] == [("welcome", {"id": "u1"})]
    [(message, due_ms)] = store.triggers.scheduled()
    assert message["campaign"] == "nudge" and abs(due_ms / 1000 - (now - 36000 + 48 * 3600)) < 2
    assert login["triggers"]["sent_now"] == 1 and login["triggers"]["scheduled"] == 1
    assert login["triggers_by_campaign"] == {"nudge": {"scheduled": 1}, "welcome": {"sent_now": 1}}
    assert store.r.llen(keys.ANONYMOUS_PREFIX + "v1") == 0 and store.r.llen(keys.ANONYMOUS_PREFIX + "v2") == 1
    # the results database gets them as the person's events, with the rows they came from
    results = SQLiteResults(tmp_path / "results.db")
    results.upgrade()
    outbox = Outbox(store.r, "sink-anonymous")
    outbox.ensure_group()
    drain_all(outbox, results)
    stored = results.events(EventQuery(person="u1"))
    assert sorted((e.import_id, e.row, e.name) for e in stored) == [
        (visits["import_id"], 1, "Signed Up"), (visits["import_id"], 2, "Viewed Product"),
        (login["import_id"], 2, "Added to Cart"), (login["import_id"], 4, "Browsed")]
    # imported again, now that v1 is u1's: its events are duplicates, the one without a messageId too
    again = run_import(login_file)
    assert (again["imported"], again["duplicates"], again["anonymous_stored"]) == (2, 2, 0)
    # a Segment import cannot be undone (its person changes and anonymous events would stay)
    with pytest.raises(ConfigError, match="segment import cannot be undone"):
        undo_import(login["import_id"])


def test_files_that_are_no_archive_are_refused_and_bad_options_said(backfill, store, tmp_path):
    long_line = write(tmp_path, "long.ndjson", '{"type": "track", "x": "' + "a" * (1024 * 1024 + 10) + '"}\n')
    report = run_import(long_line)
    assert report["status"] == "failed" and "longer than 1 MiB" in report["failure"]
    latin = tmp_path / "latin.ndjson"
    latin.write_bytes(b'{"type": "identify", "userId": "u1"}\n{"type": "identify", "userId": "\xe9"}\n')
    report = run_import(latin)
    assert report["status"] == "failed" and "line 2" in report["failure"] and "UTF-8" in report["failure"]
    not_a_list = write(tmp_path, "object.json", '{\n  "messages": []\n}\n')
    assert "without a \"batch\" list" in run_import(not_a_list)["failure"]
    typed = backfill("import", str(write(tmp_path, "p.ndjson", '{"type": "identify", "userId": "u"}\n')),
                     "--type", "people")
    assert typed.returncode == 2 and b"leave out --type" in typed.stderr
    forced = backfill("import", str(write(tmp_path, "csv.ndjson", "email,event_name\na@example.com,E\n")),
                      "--format", "csv", "--wait", "--create-people")
    assert forced.returncode == 0, forced.stderr
