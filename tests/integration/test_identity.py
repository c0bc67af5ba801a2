"""A person's events under every identifier they have or had, from the results database: a Segment
archive re-identifying a person a -> b -> c by aliases and tying an anonymous id by identify, a Vero
file under their first e-mail, a people file changing that e-mail through cio_id, a Vero file under
the new one. Any of these names asks the database for all of their events, and `people show` by an
old one answers from the database with the directory in Redis gone."""
from __future__ import annotations

import os
import subprocess

import orjson

from tests.segment_data import write_archive
from worker import keys
from worker.sink.sqlite import SQLiteResults
from worker.store.embedded import free_port
from worker.store.outbox import Outbox

from .helpers import clear_keys, counted_once, drain_all, outbox_events, run_import, write


def _segment(*messages: dict) -> list[str]:
    return [orjson.dumps(m).decode() for m in messages]


def test_a_persons_events_answer_to_every_identifier_they_had(store, workers, tmp_path):
    archive = write_archive(tmp_path / "segment.ndjson.gz", _segment(
        {"type": "track", "anonymousId": "anon-1", "event": "Visited", "messageId": "m1",
         "timestamp": "2024-03-01T10:00:00Z"},
        {"type": "identify", "userId": "a", "anonymousId": "anon-1", "traits": {"email": "Ann@Old.example"},
         "messageId": "m2"},
        {"type": "track", "userId": "a", "event": "Bought", "messageId": "m3", "timestamp": "2024-03-01T11:00:00Z"},
        {"type": "alias", "previousId": "a", "userId": "b", "messageId": "m4"},
        {"type": "track", "userId": "b", "event": "Bought", "messageId": "m5", "timestamp": "2024-03-01T12:00:00Z"},
        {"type": "alias", "previousId": "b", "userId": "c", "messageId": "m6"},
        {"type": "track", "userId": "c", "event": "Bought", "messageId": "m7", "timestamp": "2024-03-01T13:00:00Z"},
        {"type": "track", "anonymousId": "anon-1", "event": "Browsed", "messageId": "m8",
         "timestamp": "2024-03-01T14:00:00Z"},
        {"type": "identify", "userId": "zed", "traits": {"email": "zed@example.com"}, "messageId": "m9"},
        {"type": "track", "userId": "zed", "event": "Bought", "messageId": "m10", "timestamp": "2024-03-01T15:00:00Z"},
    ))
    segment = run_import(archive)
    assert counted_once(segment) and segment["errors"] == 0 and segment["anonymous_merged"] == 1
    old_mail = run_import(write(tmp_path, "old.csv", "email,event_name,time\n"
                                "ANN@old.example,Opened,2024-03-02T10:00:00Z\n"))
    assert old_mail["imported"] == 1
    cio = store.people.find("c", "id")["cio_id"]
    changed = run_import(write(tmp_path, "people.csv", f"cio_id,email\n{cio},ann@new.example\n"), kind="people")
    assert changed["imported"] == 1 and store.people.find("ann@old.example", "email") is None
    new_mail = run_import(write(tmp_path, "new.csv", "email,event_name,time,id\n"
                                "ann@new.example,Opened,2024-03-03T10:00:00Z,c\n"))
    assert new_mail["imported"] == 1 and new_mail["people_created"] == 0

    db = tmp_path / "results.db"
    results = SQLiteResults(db)
    results.upgrade()
    outbox = Outbox(store.r, "sink-identity")
    outbox.ensure_group()
    drain_all(outbox, results)
    results.close()

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}"}
    everything = sorted([(segment["import_id"], r) for r in (1, 3, 5, 7, 8)]
                        + [(old_mail["import_id"], 2), (new_mail["import_id"], 2)])

    def events_of(name: str, environ: dict) -> list[dict]:
        done = subprocess.run(_cli("events", "--person", name, "--format", "ndjson"), env=environ,
                              capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [orjson.loads(line) for line in done.stdout.splitlines()]

    for name in ("anon-1", "a", "b", "c", "ANN@old.example", "ann@new.example", cio):
        found = events_of(name, env)
        assert sorted((e["import"], e["row"]) for e in found) == everything, name
        assert {e["cio_id"] for e in found} == {cio}, name
    assert [e["name"] for e in events_of("zed", env)] == ["Bought"]

    # The directory in Redis gone, and then Redis itself: the database still answers by an old name.
    clear_keys(store.r)
    stopped = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    for name in ("a", "b", "anon-1", "ann@old.example", cio):
        shown = subprocess.run(_cli("people", "show", name, "--json"), env=stopped, capture_output=True, timeout=60)
        assert shown.returncode == 0, (name, shown.stderr)
        assert b"from the directory" not in shown.stderr
        person = orjson.loads(shown.stdout)
        assert (person["cio_id"], person["id"], person["email"]) == (cio, "c", "ann@new.example"), name
    assert len(events_of("b", stopped)) == len(everything)
    assert not store.r.exists(keys.PEOPLE_BY_ID)


def _cli(*args: str) -> list[str]:
    import shutil
    import sys
    from pathlib import Path

    return [shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill", *args]


def test_a_vero_row_whose_id_is_another_persons_than_its_email_is_warned(store, workers, tmp_path):
    import csv
    import io

    people = run_import(write(tmp_path, "people.csv", "id,email\nu1,ann@example.com\nu2,bob@example.com\n"),
                        kind="people")
    assert people["imported"] == 2
    ann, bob = store.people.find("u1", "id")["cio_id"], store.people.find("u2", "id")["cio_id"]
    report = run_import(write(tmp_path, "events.csv", "email,id,event_name,time\n"
                              "ann@example.com,u1,Bought,2024-03-01T10:00:00Z\n"   # her own id
                              "Ann@Example.com,u2,Bought,2024-03-01T11:00:00Z\n"   # Bob's id
                              "new@example.com,u1,Bought,2024-03-01T12:00:00Z\n"   # Ann's id, a new person
                              "bob@example.com,,Bought,2024-03-01T13:00:00Z\n"
                              "bob@example.com,u9,Bought,2024-03-01T14:00:00Z\n"), create_people=True)
    assert counted_once(report) and (report["imported"], report["warnings"]) == (5, 2)
    text = "".join(report["_handle"].problems_csv("warnings")).lstrip("\ufeff")  # (the file's BOM, for Excel)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["_row"], r["email"]) for r in rows] == [("3", "Ann@Example.com"), ("4", "new@example.com")]
    assert "id_email_mismatch" in rows[0]["_warnings"] and f"person {bob}'s" in rows[0]["_warnings"]
    assert f"names person {ann}" in rows[0]["_warnings"]
    assert f"person {ann}'s" in rows[1]["_warnings"] and "no one yet" in rows[1]["_warnings"]
    # the events are the e-mail's people's, the id a property
    events = {e["row"]: e for e in outbox_events(store, report["import_id"])}
    assert events[3]["person"] == {"email": "Ann@Example.com"} and events[3]["data"] == {"id": "u2"}
