"""Undo against a real Redis, real workers and a sink's SQLite: an import taken back is gone from the
database and the outbox, its marks and scheduled triggers too, and the same file imports everything again."""
from __future__ import annotations

import dataclasses
import time

import pytest

from producers.undo import undo_import
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
