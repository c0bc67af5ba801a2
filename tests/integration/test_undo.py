"""Undo against a real Redis, real workers and a sink's SQLite: an import taken back is gone from the
database and the outbox, its marks and scheduled triggers too, and the same file imports everything again."""
from __future__ import annotations

import dataclasses
import time

import orjson
import pytest

from producers.api import undo_import
from worker import keys
from worker.errors import ConfigError
from worker.events.rules import Campaign
from worker.settings import get_settings
from worker.sink.drain import drain_once
from worker.sink.sqlite import SQLiteResults
from worker.store.outbox import Outbox

from .helpers import drain_all, run_import, write


def _database(tmp_path):
    """A results database of the test's own (the directory's cio_ids start again with each test's Redis)."""
    results = SQLiteResults(tmp_path / "results.db")
    results.upgrade()
    return results, dataclasses.replace(get_settings(), database_url=f"sqlite:///{tmp_path / 'results.db'}")


def test_an_undone_import_is_gone_and_the_same_file_imports_everything_again(store, workers, tmp_path):
    store.triggers.add_campaign(Campaign("later", "Ordered", 3 * 365 * 86_400))  # scheduled, never sent here
    with_ids = [f"p{n}@example.com,Ordered,2024-03-01T10:{n % 60:02}:00Z,E{n}" for n in range(50)]
    by_content = [f"q{n}@example.com,Ordered,2024-03-02T10:{n % 60:02}:00Z," for n in range(50)]
    path = write(tmp_path, "orders.csv", "email,event_name,time,event_id\n" + "\n".join(with_ids + by_content) + "\n")
    first = run_import(path, create_people=True, trigger=True, trigger_window="none")
    import_id = first["import_id"]
    assert first["imported"] == 100 and store.r.zcard(keys.TRIGGERS_ZSET) == 100
    # a sink stores one chunk (50 rows) before the undo; the other chunk is still in the outbox
    results, settings = _database(tmp_path)
    outbox = Outbox(store.r, "sink-undo")
    outbox.ensure_group()
    assert drain_once(outbox, results, batch=1, block_ms=50, claim_idle_ms=60_000).new_events == 50

    _settled(store)
    done = undo_import(import_id, settings)
    assert (done["marks_removed"], done["triggers_unscheduled"], done["events_deleted"], done["sent"]) == \
        (100, 100, 50, [])
    # its 100 people are kept: one of its entries is not stored yet (it would write them back)
    assert (done["decisions_deleted"], done["people_deleted"], done["people_kept"]) == (50, 0, 100)
    assert "not all in the results database" in done["people_kept_why"]
    assert store.r.zcard(keys.TRIGGERS_ZSET) == 0
    drain_all(outbox, results)  # the entry still in the outbox is dropped, not stored
    assert results.count_events(import_id) == 0 and results.deliveries(import_id) == []
    assert store.imports.state(import_id)["undone_ms"] == str(done["undone_ms"])
    assert undo_import(import_id, settings) == {**done, "already": True}  # recorded: nothing more is done

    second = run_import(path, create_people=True)
    assert (second["imported"], second["duplicates"], second["people_created"]) == (100, 0, 0)
    drain_all(outbox, results)
    assert results.count_events(second["import_id"]) == 100 and results.count_events(import_id) == 0


def _settled(store) -> None:
    """Wait until no work is pending (the report's notification included): undo keeps people while any is."""
    deadline = time.monotonic() + 30
    while (store.r.zcard(keys.PENDING) or store.r.zcard(keys.PRODUCING)) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_people_named_by_another_import_are_kept(store, workers, tmp_path):
    shared = write(tmp_path, "a.csv", "email,event_name\nann@example.com,Joined\nbob@example.com,Joined\n")
    first = run_import(shared, create_people=True)
    later = run_import(write(tmp_path, "b.csv", "email,event_name\nann@example.com,Paid\n"))
    assert later["imported"] == 1
    results, settings = _database(tmp_path)
    outbox = Outbox(store.r, "sink-keep")
    outbox.ensure_group()
    drain_all(outbox, results)
    _settled(store)
    done = undo_import(first["import_id"], settings)
    # everything stored: ann is named by the later import's event: kept; bob only by the undone import: deleted
    assert (done["people_deleted"], done["people_kept"]) == (1, 1) and "named by other imports" in done["people_kept_why"]
    assert store.r.hget(keys.PEOPLE_BY_EMAIL, "ann@example.com") and not store.r.hget(keys.PEOPLE_BY_EMAIL,
                                                                                       "bob@example.com")
    assert [p["email"] for p in results.people("email", "bob@example.com")] == []


def test_what_cannot_be_undone(store, workers, tmp_path):
    people = run_import(write(tmp_path, "people.csv", "id,email\nu1,u1@example.com\n"), kind="people")
    with pytest.raises(ConfigError, match="people import"):
        undo_import(people["import_id"])
    refused = run_import(write(tmp_path, "bad.csv", "nobody,what\nx,y\n"))
    assert undo_import(refused["import_id"])["events_deleted"] == 0  # it wrote nothing: recorded as undone


def test_a_person_sharing_an_e_mail_leaves_only_their_own_place(store):
    """An id-only workspace: two people share an e-mail; forgetting one keeps the other findable."""
    store.r.hset(keys.PEOPLE_BY_EMAIL, "pat@example.com", "a0000001,a0000002")
    for cio in ("a0000001", "a0000002"):
        store.r.hset(keys.person(cio), mapping={"cio_id": cio, "email": "pat@example.com", "_v": 1})
    store.r.hset(keys.person("a0000003"), mapping={"cio_id": "a0000003", "_v": 2})  # changed since
    people = {"a0000001": ("email", "pat@example.com"), "a0000003": ("id", "x")}
    assert store.events.forget_people(people) == ["a0000001"]
    assert store.r.hget(keys.PEOPLE_BY_EMAIL, "pat@example.com") == b"a0000002"
    assert not store.r.exists(keys.person("a0000001")) and store.r.exists(keys.person("a0000003"))


# -- undo and imports that share events -------------------------------------------------------------
HEADER = "email,event_name,time,event_id\n"


def _rows(prefix: str, count: int, *, ids: bool = True, day: int = 1) -> list[str]:
    """A Vero export's rows: with event ids (deduped by id) or without (deduped by their content)."""
    return [f"{prefix}{n}@example.com,Ordered,2024-03-{day:02}T10:{n % 60:02}:{n // 60 % 60:02}Z,"
            + (f"{prefix.upper()}{n}" if ids else "") for n in range(count)]


def _database_for(request, tmp_path):
    """The results database of the test (SQLite of its own, or the session's PostgreSQL) and its settings."""
    if request.param == "sqlite":
        return _database(tmp_path)
    results = request.getfixturevalue("postgres")
    return results, dataclasses.replace(get_settings(), database_url=request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    return _database_for(request, tmp_path)


def _stored_once(results, import_id: str, path) -> None:
    """Every event of the file ``path`` is stored once, as ``import_id``'s row (its file row)."""
    lines = path.read_text().splitlines()[1:]
    stored = {e.row: e for e in results.events_of(import_id, -1, 100_000)}
    assert sorted(stored) == list(range(2, len(lines) + 2))
    for row, line in enumerate(lines, start=2):
        email, _, _, event_id = line.split(",")
        assert (stored[row].person, stored[row].event_id) == (email, event_id or None), line


def test_an_undo_leaves_the_events_a_later_import_also_brought(store, workers, tmp_path, database):
    """X imported, then Y with some of X's events (counted duplicates of X's) and some of its own; undo X:
    Y's events all stay, as Y's rows, X's others go, and X's file imports X's own events again."""
    results, settings = database
    shared = _rows("b", 60) + _rows("c", 40, ids=False, day=2)
    x = write(tmp_path, "x.csv", HEADER + "\n".join(_rows("a", 50) + shared) + "\n")
    y = write(tmp_path, "y.csv", HEADER + "\n".join(_rows("d", 30, day=3) + shared) + "\n")
    first = run_import(x, create_people=True)
    later = run_import(y, create_people=True)
    assert (later["imported"], later["duplicates"]) == (30, 100)
    outbox = Outbox(store.r, "sink-shared")
    outbox.ensure_group()
    drain_all(outbox, results)
    _settled(store)

    done = undo_import(first["import_id"], settings)
    assert (done["events_deleted"], done["marks_removed"], done["events_kept"]) == (150, 50, 100)
    assert done["kept_by"] == {later["import_id"]: 100}
    drain_all(outbox, results)
    assert results.count_events(first["import_id"]) == 0
    _stored_once(results, later["import_id"], y)
    # Y counts them imported now, in Redis and in the database's record
    report = orjson.loads(store.imports.state(later["import_id"])["report"])
    assert (report["imported"], report["duplicates"], report["kept_from_undone"]) == \
        (130, 0, {first["import_id"]: 100})
    assert orjson.loads(results.import_record(later["import_id"])["report"])["imported"] == 130
    assert undo_import(first["import_id"], settings)["already"]  # asked again: nothing moves twice
    assert orjson.loads(store.imports.state(later["import_id"])["report"])["imported"] == 130

    # the dedupe memory holds Y's events, not X's own: X's file imports its own 50 again, Y's file nothing
    again = run_import(x, create_people=True)
    assert (again["imported"], again["duplicates"]) == (50, 100)
    assert (run_import(y)["imported"], results.count_events(later["import_id"])) == (0, 130)


def test_imports_wait_while_an_undo_changes_the_dedupe_memory(store, workers, tmp_path):
    store.r.set(keys.UNDO_MARKS, "someone", px=60_000)
    from producers.api import enqueue_import

    handle = enqueue_import(write(tmp_path, "w.csv", HEADER + "\n".join(_rows("w", 120)) + "\n"), create_people=True)
    time.sleep(2)
    assert int(store.imports.state(handle.import_id).get("chunks_done") or 0) == 0
    store.r.delete(keys.UNDO_MARKS)
    assert handle.wait(timeout=60)["imported"] == 120


def test_a_second_undo_is_refused_while_one_runs(store, workers, tmp_path):
    done = run_import(write(tmp_path, "u.csv", HEADER + "\n".join(_rows("u", 3)) + "\n"), create_people=True)
    store.r.set(keys.UNDO_LEASE, "imp-other", px=60_000)
    with pytest.raises(ConfigError, match="an undo of import imp-other is running"):
        undo_import(done["import_id"], _database(tmp_path)[1])
    assert not store.r.sismember(keys.UNDONE, done["import_id"])  # refused before anything changed


def test_an_undo_asked_while_a_later_import_runs(store, workers, tmp_path):
    """X imported; Y (X's second half, then rows of its own) runs, its workers paused after two of its
    chunks committed (those counted X's events duplicates); undo X then; Y goes on. In the end Y's file is
    stored once, as Y's, and X's events Y did not bring are gone."""
    import os
    import signal

    from producers.api import enqueue_import

    from .test_tracking import _tree

    results, settings = _database(tmp_path)
    outbox = Outbox(store.r, "sink-race")
    outbox.ensure_group()
    shared = _rows("s", 300)
    x = write(tmp_path, "x.csv", HEADER + "\n".join(_rows("a", 100) + shared) + "\n")
    y = write(tmp_path, "y.csv", HEADER + "\n".join(shared + _rows("n", 900, day=4)) + "\n")
    first = run_import(x, create_people=True)
    drain_all(outbox, results)
    _settled(store)
    handle = enqueue_import(y, create_people=True)
    paused = [pid for process in workers for pid in _tree(process.pid)]
    deadline = time.monotonic() + 60
    while int(store.imports.state(handle.import_id).get("chunks_done") or 0) < 2:
        assert time.monotonic() < deadline, "Y committed no chunk"
        time.sleep(0.01)
    for pid in paused:
        os.kill(pid, signal.SIGSTOP)
    try:
        committed = int(store.imports.state(handle.import_id)["chunks_done"])
        assert committed < 24, "Y had finished before the undo: the race was not made"
        done = undo_import(first["import_id"], settings)
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
    assert done["events_kept"] > 0 and set(done["kept_by"]) == {handle.import_id}
    report = handle.wait(timeout=90)
    assert (report["imported"], report["duplicates"], report["rows"]) == (1200, 0, 1200)
    drain_all(outbox, results)
    assert results.count_events(first["import_id"]) == 0
    _stored_once(results, handle.import_id, y)
    assert run_import(y)["duplicates"] == 1200  # and Redis's dedupe memory holds every one of them


def test_a_report_built_before_an_undo_moved_its_counts_is_built_again(store):
    """finalize.lua writes nothing when the import's counts moved (an undo left it events) since its report
    was built from them: the report is built again, with the counts as they are."""
    store.r.hset(keys.import_hash("imp-y"), mapping={"imported": 8, "duplicates": 0, "adopted": 5})
    stale = {"import_id": "imp-y", "status": "completed", "imported": 3, "duplicates": 5}
    assert store.imports.finalize("imp-y", "completed", stale, 60, adopted=0) is None
    assert store.imports.state("imp-y").get("report") is None
    assert store.imports.finalize("imp-y", "completed", {**stale, "imported": 8, "duplicates": 0}, 60, adopted=5)
