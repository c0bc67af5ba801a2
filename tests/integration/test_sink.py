"""The sink against a real Redis and real workers: what the imports committed lands in SQLite once,
whatever dies, and the outbox is emptied."""
from __future__ import annotations

import orjson

from worker import keys
from worker.sink.batch import batch_of
from worker.sink.drain import drain_once
from worker.sink.sqlite import SQLiteResults
from worker.sink.stored import EventQuery
from worker.store.outbox import Outbox

from .helpers import counted_once, drain_all, run_import, wait_until, write


def _results(tmp_path) -> SQLiteResults:
    results = SQLiteResults(tmp_path / "results.db")
    results.upgrade()
    return results


def test_an_import_lands_in_the_database_once_and_the_outbox_is_trimmed(store, workers, tmp_path):
    lines = [f"p{n}@example.com,Ordered,2024-03-01T10:{n % 60:02}:00Z,E{n}" for n in range(500)] + ["bad,x,,y"]
    report = run_import(write(tmp_path, "orders.csv", "email,event_name,time,event_id\n" + "\n".join(lines) + "\n"),
                        create_people=True)
    assert counted_once(report) and report["imported"] == 500
    streamed = {(e["row"], e["person"]["email"], e["id"]) for e in store.events.read(report["import_id"])}
    results, outbox = _results(tmp_path), Outbox(store.r, "sink-a")
    outbox.ensure_group()
    assert drain_all(outbox, results) == 500
    assert results.count_events(report["import_id"]) == 500
    assert store.r.xlen(keys.OUTBOX) == 0  # every entry stored, acknowledged and trimmed
    stored = {(e.row, e.person, e.event_id) for e in results.events(EventQuery(import_id=report["import_id"],
                                                                                limit=1000))}
    assert stored == streamed and len(stored) == 500


def test_a_sink_that_died_before_acknowledging_is_claimed_and_nothing_doubles(store, workers, tmp_path):
    report = run_import(write(tmp_path, "a.csv", "email,event_name\n" + "".join(
        f"p{n}@example.com,Signed up\n" for n in range(300))), create_people=True)
    results = _results(tmp_path)
    dead, alive = Outbox(store.r, "sink-dead"), Outbox(store.r, "sink-alive")
    dead.ensure_group()
    taken = dead.read(count=3, block_ms=50)  # read, then the process dies: never written, never acknowledged
    assert taken and store.r.xpending(keys.OUTBOX, keys.SINK_GROUP)["pending"] == len(taken)
    # A sink also writes a batch and dies before acknowledging it: written twice is harmless.
    results.write(batch_of(taken))
    assert drain_all(alive, results, claim_idle_ms=0) >= 0
    assert results.count_events(report["import_id"]) == 300
    assert store.r.xpending(keys.OUTBOX, keys.SINK_GROUP)["pending"] == 0
    assert store.r.xlen(keys.OUTBOX) == 0


def test_the_cli_upgrades_sinks_and_asks_the_database(store, workers, backfill, tmp_path):
    import csv
    import io
    import os
    import shutil
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import orjson

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    from worker.settings import reset_settings

    os.environ["DATABASE_URL"] = db
    reset_settings()
    try:
        refused = backfill("events")
        assert refused.returncode == 1 and b"backfill db upgrade" in refused.stderr
        refused = backfill("worker", timeout=30)  # a worker whose sink could not run does not start
        assert refused.returncode == 1 and b"backfill db upgrade" in refused.stderr and b"--no-sink" in refused.stderr
        assert backfill("db", "upgrade").stdout.startswith(b"applied 1")
        exe = shutil.which("backfill", path=str(Path(sys.executable).parent))
        sink = subprocess.Popen([exe, "sink"], env={**os.environ}, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: store.r.zcard(keys.SINKS), 30, "the sink running")
            # --wait returns once the report is written and the sink has stored the import: queryable now
            done = backfill("import", str(write(tmp_path, "e.csv", "email,event_name,time,note\n"
                                                "Ann@Example.com,Ordered,2024-03-01T10:00:00Z,=1+2\n"
                                                "bob@example.com,Viewed,2024-03-02T10:00:00Z,hi\n")),
                            "--create-people", "--wait", "--json")
            report = orjson.loads(done.stdout)
            import_id = report["import_id"]
            assert report["stored"] is True and report["events_stored"] == 2
            from producers.api import ImportHandle

            assert [e.row for e in ImportHandle(import_id).events()] == [2, 3]
            person = backfill("people", "show", "ann@example.com", "--json")
            assert person.returncode == 0 and b"from the directory" not in person.stderr  # read from the database
            assert orjson.loads(person.stdout)["email"] == "Ann@Example.com"
            text = backfill("report", import_id).stdout.decode()
            assert "stored            2 events in the results database (all of it)" in text
        finally:
            sink.send_signal(signal.SIGINT)
            sink.wait(timeout=20)
        shown = backfill("events", "--person", "ANN@example.com", "--format", "csv")
        rows = list(csv.reader(io.StringIO(shown.stdout.decode())))
        assert rows[0][:4] == ["import", "row", "person", "name"] and len(rows) == 2
        assert rows[1][:4] == [import_id, "2", "ann@example.com", "Ordered"] and rows[1][4] == "2024-03-01T10:00:00Z"
        assert '"=1+2"' in rows[1][6]  # the data cell starts with { : nothing for a spreadsheet to run
        lines = [orjson.loads(x) for x in backfill("events", "--import", import_id, "--format", "ndjson").stdout.splitlines()]
        assert [(x["name"], x["person"], x["person_kind"]) for x in lines] == [
            ("Ordered", "ann@example.com", "email"), ("Viewed", "bob@example.com", "email")]
        cio = orjson.loads(person.stdout)["cio_id"]  # a person's events answer to any of its identifiers
        by_cio = backfill("events", "--person", cio, "--format", "ndjson").stdout.splitlines()
        assert [orjson.loads(x)["row"] for x in by_cio] == [2]
        assert backfill("events", "--limit", "0").returncode == 2
        assert backfill("events", "--since", "2024-03-02", "--until", "2024-03-01").returncode == 2
    finally:
        del os.environ["DATABASE_URL"]
        reset_settings()


def _directory(store) -> dict[str, tuple]:
    """Every person in the Redis directory, as the people table holds it (the oracle)."""
    from worker.sink.batch import person_row

    found = {}
    from worker.store.people import read_people

    for state in read_people(store.r, [k.decode() for k in store.r.scan_iter(match=keys.person("*"))]):
        assert state is not None
        found[state["cio_id"]] = person_row(state, "")[:8]
    return found


def _signups(store, tmp_path, people: tuple[str, str, str]) -> dict:
    """A triggering import's report: two campaigns on "Signed up" (one sent at once, one an hour later), and
    ``people`` signed up a minute ago, signed up five days ago (outside the window), viewed something now."""
    import time

    from worker.events.rules import Campaign

    store.triggers.add_campaign(Campaign("welcome", "Signed up", 0))
    store.triggers.add_campaign(Campaign("nudge", "Signed up", 3600))
    now = int(time.time())
    column = "email" if "@" in people[0] else "id"
    return run_import(write(tmp_path, "signups.csv", f"{column},event_name,time\n{people[0]},Signed up,{now - 60}\n"
                            f"{people[1]},Signed up,{now - 5 * 86_400}\n{people[2]},Viewed,{now}\n"),
                      trigger=True, create_people=True)


def test_people_decisions_and_import_records_land_as_redis_holds_them(store, workers, tmp_path):
    import time

    lines = [f"{n % 90},p{n % 90}@example.com,plan{n},{'true' if n % 3 else 'false'}" for n in range(600)]
    people = run_import(write(tmp_path, "people.csv", "id,email,plan,unsubscribed\n" + "\n".join(lines) + "\n"),
                        kind="people")
    assert people["chunks"] > 3 and people["imported"] == 600
    events = _signups(store, tmp_path, ("1", "2", "3"))
    assert events["triggers"]["sent_now"] == 1 and events["triggers"]["scheduled"] == 1
    assert events["triggers"]["outside_window"] == 1
    assert store.triggers.move_due(int(time.time() * 1000) + 7200_000) == 1  # the nudge is sent

    results, outbox = _results(tmp_path), Outbox(store.r, "sink-p")
    outbox.ensure_group()
    drain_all(outbox, results)
    directory = _directory(store)
    stored = {p["cio_id"]: p for n in range(90) for p in results.people("id", str(n))}
    assert len(directory) == 90 and {cio: (p["cio_id"], p["id"], p["email"], p["created_at"], p["unsubscribed"],
                                           orjson.dumps(p["attributes"]).decode(),
                                           orjson.dumps(p["topics"]).decode(), p["version"])
                                     for cio, p in stored.items()} == directory
    decisions = {(d["row"], d["campaign"]): d["state"] for d in results.deliveries(events["import_id"])}
    assert decisions == {(2, "welcome"): "sent", (2, "nudge"): "sent", (3, "welcome"): "outside_window",
                         (3, "nudge"): "outside_window"}
    for report in (people, events):
        record = results.import_record(report["import_id"])
        assert record["status"] == "completed" and orjson.loads(record["report"])["imported"] == report["imported"]
        state = store.imports.state(report["import_id"])
        assert state["outbox_stored"] == state["outbox_entries"]
    assert store.imports.state(events["import_id"])["events_stored"] == "3"
    assert store.r.xlen(keys.OUTBOX) == 0


def test_decisions_left_in_the_outbox_by_the_previous_version_are_stored_as_todays(store, workers, tmp_path):
    """An entry's decisions hold each message as an object; the version before held it as a JSON string
    inside the array, and its entries may still wait in Redis after an upgrade: a sink stores both alike."""
    report = _signups(store, tmp_path, ("a@x.co", "b@x.co", "c@x.co"))
    [(entry_id, fields)] = [e for e in store.r.xrange(keys.OUTBOX) if b"decisions" in e[1]]
    decisions = orjson.loads(fields[b"decisions"])
    assert [sorted((kind, type(message)) for kind, _, message in actions) for actions in decisions] == [
        [("scheduled", dict), ("sent_now", dict)], [("outside_window", dict), ("outside_window", dict)]]
    # The same entry as the version before wrote it, in the outbox in place of today's.
    before = {**fields, b"decisions": orjson.dumps([[[kind, due, orjson.dumps(message).decode()]
                                                     for kind, due, message in actions] for actions in decisions])}
    assert batch_of([(entry_id, before)]).deliveries == batch_of([(entry_id, fields)]).deliveries
    store.r.xdel(keys.OUTBOX, entry_id)
    store.r.xadd(keys.OUTBOX, before)
    results, outbox = _results(tmp_path), Outbox(store.r, "sink-u")
    outbox.ensure_group()
    assert drain_all(outbox, results) == 3
    stored = {(d["row"], d["campaign"]): (d["state"], d["person"], d["event"]) for d in
              results.deliveries(report["import_id"])}
    assert stored == {(2, "welcome"): ("sent", "a@x.co", "Signed up"), (2, "nudge"): ("scheduled", "a@x.co", "Signed up"),
                      (3, "welcome"): ("outside_window", "b@x.co", "Signed up"),
                      (3, "nudge"): ("outside_window", "b@x.co", "Signed up")}
    state = store.imports.state(report["import_id"])
    assert state["outbox_stored"] == state["outbox_entries"] and store.r.xlen(keys.OUTBOX) == 0


def test_producers_pause_while_the_outbox_is_full_and_go_on_when_a_sink_catches_up(store, workers, tmp_path,
                                                                                   monkeypatch):
    import time

    from producers.api import enqueue_import
    from worker.settings import reset_settings

    monkeypatch.setenv("BACKFILL_OUTBOX_LIMIT", "3")
    reset_settings()
    try:
        handle = enqueue_import(write(tmp_path, "many.csv", "email,event_name\n" + "".join(
            f"p{n}@example.com,Viewed\n" for n in range(1000))), create_people=True)
        waiting = wait_until(lambda: handle.state().get("waiting"), 30, "the producer saying why it waits")
        assert "outbox entries not stored yet (BACKFILL_OUTBOX_LIMIT 3)" in waiting and "no sink is running" in waiting
        # paused: nothing more is queued while the chunks queued before the pause commit (up to
        # BACKFILL_MAX_INFLIGHT_CHUNKS of them, however fast the workers were at that moment)
        queued = int(handle.state()["chunks_queued"])
        wait_until(lambda: handle.state().get("chunks_done") == str(queued), 30, "the chunks queued committed")
        assert handle.report() is None and int(handle.state()["chunks_queued"]) == queued < 20
        deadline = time.monotonic() + 30
        assert store.r.xlen(keys.OUTBOX) <= queued
        results, outbox = _results(tmp_path), Outbox(store.r, "sink-late")
        outbox.ensure_group()
        while handle.report() is None and time.monotonic() < deadline + 30:
            drain_once(outbox, results, batch=2, block_ms=50, claim_idle_ms=60_000)
        drain_all(outbox, results)
        report = handle.report()
        assert report["imported"] == 1000 and report["stored"] and results.count_events(handle.import_id) == 1000
        assert "waiting" not in handle.state()
    finally:
        monkeypatch.delenv("BACKFILL_OUTBOX_LIMIT")
        reset_settings()


def test_the_outbox_limit_counts_the_chunks_in_flight_and_status_shows_fresh_figures(store, workers, backfill,
                                                                                      tmp_path, monkeypatch):
    """The producer queues chunks much faster than workers commit them: each becomes an outbox entry
    later, so they count against the limit from the start (limit 5: not 5 plus the 40 in flight)."""
    import time

    from producers.api import enqueue_import
    from worker.settings import reset_settings

    monkeypatch.setenv("BACKFILL_OUTBOX_LIMIT", "5")
    reset_settings()
    try:
        handle = enqueue_import(write(tmp_path, "many.csv", "email,event_name\n" + "".join(
            f"p{n}@example.com,Viewed\n" for n in range(2000))), create_people=True)  # 40 chunks
        deadline = time.monotonic() + 30

        def said_fresh() -> bool:
            """Every chunk queued is committed, and the producer has said so since: the entries it waits on
            are the outbox's alone (none "being committed")."""
            state = handle.state()
            return bool(state.get("chunks_done") and state["chunks_done"] == state.get("chunks_queued")
                        and f"{store.r.xlen(keys.OUTBOX)} outbox entries not stored yet (BACKFILL_OUTBOX_LIMIT 5);"
                        in state.get("waiting", ""))

        wait_until(said_fresh, 30, "the producer waiting on the committed chunks' outbox entries, said afresh")
        entries = store.r.xlen(keys.OUTBOX)
        assert 0 < entries <= 5 and int(handle.state()["chunks_queued"]) == entries, handle.state()
        shown = backfill("status", handle.import_id).stdout.decode()
        assert f"waiting for the sink: {entries} outbox entries not stored yet (BACKFILL_OUTBOX_LIMIT 5)" in shown, shown
        results, outbox = _results(tmp_path), Outbox(store.r, "sink-late")
        outbox.ensure_group()
        while handle.report() is None and time.monotonic() < deadline + 60:
            drain_once(outbox, results, batch=2, block_ms=50, claim_idle_ms=60_000)
            assert store.r.xlen(keys.OUTBOX) <= 6  # (the import's record, once it ends)
        drain_all(outbox, results)
        assert handle.report()["imported"] == 2000 and results.count_events(handle.import_id) == 2000
    finally:
        monkeypatch.delenv("BACKFILL_OUTBOX_LIMIT")
        reset_settings()


def test_bad_settings_are_one_line(backfill, tmp_path, monkeypatch):
    cases = [({"DATABASE_URL": "sqlite:////proc/nowhere/r.db"}, ("db", "upgrade"), b"cannot be used"),
             ({"DATABASE_URL": f"sqlite:///{tmp_path / 'missing.db'}"}, ("events",), b"no results database at"),
             ({"DATABASE_URL": f"sqlite:///{tmp_path}"}, ("events",), b"no results database at"),
             ({"DATABASE_URL": "postgresql://"}, ("events",), b"names no server"),
             ({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}, ("events",), b"the results database postgresql"),
             ({"REDIS_URL": "http://x"}, ("status",), b"REDIS_URL must start with")]
    for env, args, said in cases:
        with monkeypatch.context() as patched:
            for name, value in env.items():
                patched.setenv(name, value)
            done = backfill(*args)
        assert done.returncode == 1 and said in done.stderr and b"Traceback" not in done.stderr, (env, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and b"Redis did not" not in done.stderr, done.stderr
    assert not (tmp_path / "missing.db").exists()  # a query creates no database


def test_events_redis_forgot_are_not_stored_twice_and_the_report_counts_them(store, workers, tmp_path):
    import hashlib

    # rows 152-201 use the event ids of rows 2-51 again: Redis finds them duplicates and cuts them (and
    # their dedupe keys) out of the outbox entries
    lines = [f"p{n % 150}@example.com,Ordered,2024-03-01T10:{n % 60:02}:00Z,E{n % 150}" for n in range(200)]
    path = write(tmp_path, "orders.csv", "email,event_name,time,event_id\n" + "\n".join(lines) + "\n")
    first = run_import(path, create_people=True)
    assert (first["imported"], first["duplicates"]) == (150, 50)
    entries = [fields for _, fields in store.r.xrange(keys.OUTBOX) if fields.get(b"events")]
    for fields in entries:  # each event with its own dedupe key, in order
        ids = [orjson.loads(line)["id"] for line in fields[b"events"].split(b"\n")]
        assert fields[b"keys"] == b"".join(hashlib.blake2b(b"id\0" + i.encode(), digest_size=10).digest() for i in ids)
    results, outbox = _results(tmp_path), Outbox(store.r, "sink-a")
    outbox.ensure_group()
    assert drain_all(outbox, results) == 150
    # Redis forgets its marks (a host crash rolled it back): the same file is new to it
    for shard in list(store.r.scan_iter(match=keys.DEDUPE_PREFIX.encode() + b"*")):
        store.r.delete(shard)
    second = run_import(path, create_people=True)
    assert (second["imported"], second["duplicates"]) == (150, 50)
    assert drain_all(outbox, results) == 0
    assert results.count_events(first["import_id"]) == 150 and results.count_events(second["import_id"]) == 0
    report = second["_handle"].report()
    assert report["late_duplicates"] == 150 and report["events_stored"] == 0 and report["stored"]
    assert int(store.r.hget(keys.METRICS, "stored_late_duplicates")) >= 150
