"""The SQLite results store: migrations, idempotent batches, queries. A real SQLite file, no Redis."""
from __future__ import annotations

import orjson
import pytest

from worker.errors import ConfigError
from worker.sink.batch import batch_of
from worker.sink.schema import LATEST
from worker.sink.sqlite import SQLiteResults
from worker.sink.stored import EventQuery


def _entry(import_id: str, events: list[dict], **more: object) -> dict[bytes, bytes]:
    """An outbox entry as the commit scripts write it."""
    entry = {b"import": import_id.encode(), b"chunk": b"0", b"count": str(len(events)).encode(),
             b"events": b"\n".join(orjson.dumps(e) for e in events)}
    for name, value in more.items():
        entry[name.encode()] = value if isinstance(value, bytes) else orjson.dumps(value)
    return entry


def _person(cio: str, version: int, **fields: str) -> dict:
    return {"cio_id": cio, "_v": str(version), **fields}


def _message(row: int, campaign: str, due: str | None = None) -> str:
    return orjson.dumps({"delivery_id": f"i1:{row}:{campaign}", "campaign": campaign, "event": "Ordered",
                         "person": {"email": "Ann@Example.com"}, "import": "i1", "row": row,
                         "event_time": "2023-11-14T22:13:20.000Z", "due": due}).decode()


def check_people_deliveries_and_imports(results) -> None:
    """People by version, deliveries from scheduled to sent, import records once: in any order of
    entries, and written again (a replay) without change. Shared by both backends' tests."""
    old = _person("a1", 1, email="Ann@Example.com", created_at="1700000000")
    new = _person("a1", 3, email="ann@new.example", id="42", unsubscribed="true", **{"a:plan": "pro", "t:news": "true"})
    scheduled = [["scheduled", 1700003600000, _message(2, "Welcome", "2023-11-14T23:13:20.000Z")],
                 ["discarded", 0, _message(2, "Late")]]
    outside = [["outside_window", 0, _message(4, "Welcome")]]
    record = {"import_id": "i1", "status": "completed", "created_ms": 1, "finished_ms": 2,
              "report": {"status": "completed", "kind": "events", "source": "f.csv", "trigger": True, "imported": 3}}
    newer_first = [(b"5-0", {b"import": b"i1", b"people": orjson.dumps([new])}),
                   (b"6-0", {b"sent": orjson.dumps([orjson.loads(scheduled[0][2])]), b"at": b"1700003600100"})]
    older_after = [(b"7-0", _entry("i1", EVENTS, people=[old], decisions=[scheduled, outside])),
                   (b"8-0", {b"import": b"i1", b"record": orjson.dumps(record)})]
    for entries in (newer_first, older_after, newer_first + older_after):  # the last: a replay of both
        results.write(batch_of(entries))
    [ann] = results.people("email", "ANN@new.example")
    assert ann == {"cio_id": "a1", "id": "42", "email": "ann@new.example", "created_at": None, "unsubscribed": True,
                   "attributes": {"plan": "pro"}, "topics": {"news": True}, "version": 3, "import_id": "i1", "tags": []}
    assert results.people("id", "42") == [ann] and results.people("email", "Ann@Example.com") == []
    states = {(d["row"], d["campaign"]): (d["state"], d["due_ms"], d["sent_ms"]) for d in results.deliveries("i1")}
    assert states == {(2, "Welcome"): ("sent", 1700003600000, 1700003600100), (2, "Late"): ("discarded", None, None),
                      (4, "Welcome"): ("outside_window", None, None)}
    stored = results.import_record("i1")
    assert stored["status"] == "completed" and stored["kind"] == "events" and stored["source"] == "f.csv"
    assert orjson.loads(stored["options"]) == {"source": "f.csv", "kind": "events", "trigger": True}
    assert orjson.loads(stored["report"])["imported"] == 3 and results.count_events("i1") == 3


EVENTS = [
    {"import": "i1", "row": 2, "name": "Ordered", "person": {"email": "Ann@Example.com"}, "timestamp": 1700000000,
     "data": {"price": "9.99"}, "id": "E-1"},
    {"import": "i1", "row": 3, "name": "Viewed", "person": {"email": "bob@example.com"}, "timestamp": 1700000100.5,
     "data": {}},
    {"import": "i1", "row": 4, "name": "Ordered", "person": {"email": "ann@example.com"}, "timestamp": 1700000200,
     "data": {"price": "1"}},
]


def test_a_new_database_refuses_until_upgraded_and_a_newer_one_is_refused(tmp_path):
    results = SQLiteResults(tmp_path / "r.db")
    with pytest.raises(ConfigError, match="backfill db upgrade"):
        results.check()
    assert results.upgrade() == list(range(1, LATEST + 1)) and results.upgrade() == []
    results.check()
    results.db.execute("INSERT INTO schema_version VALUES (?)", (LATEST + 1,))
    with pytest.raises(ConfigError, match="newer than this backfill"):
        results.check()


def test_batches_are_idempotent_and_questions_narrow(tmp_path):
    results = SQLiteResults(tmp_path / "r.db")
    results.upgrade()
    batch = batch_of([(b"1-0", _entry("i1", EVENTS))])
    assert results.write(batch) == 3 and results.write(batch) == 0  # a batch written again
    assert results.count_events("i1") == 3
    ann = list(results.events(EventQuery(person="ann@example.com")))
    assert [(e.row, e.name, e.ts_ms, e.data) for e in ann] == [(2, "Ordered", 1700000000000, {"price": "9.99"}),
                                                                 (4, "Ordered", 1700000200000, {"price": "1"})]
    assert ann[0].event_id == "E-1" and ann[0].person_kind == "email"
    assert [e.row for e in results.events(EventQuery(name="Ordered", since_ms=1700000100000))] == [4]
    assert [e.row for e in results.events(EventQuery(until_ms=1700000100600))] == [2, 3]
    assert [e.row for e in results.events(EventQuery(import_id="i1", limit=1))] == [2]


def test_people_deliveries_and_imports_settle_whatever_the_order(tmp_path):
    results = SQLiteResults(tmp_path / "r.db")
    results.upgrade()
    check_people_deliveries_and_imports(results)


def test_an_undo_deletes_an_import_and_its_late_entries_are_dropped(tmp_path):
    results = SQLiteResults(tmp_path / "r.db")
    results.upgrade()
    mine = [{**e, "import": "u1"} for e in EVENTS]
    decision = [["scheduled", 1800000000000, orjson.dumps({
        "delivery_id": "u1:2:later", "campaign": "later", "event": "Ordered", "person": {"email": "ann@example.com"},
        "import": "u1", "row": 2, "event_time": "2023-11-14T22:13:20.000Z", "due": "2027-01-15T08:00:00.000Z"}).decode()]]
    assert results.write(batch_of([(b"1-0", _entry("u1", mine[:2], decisions=[decision]))])) == 2
    assert len(results.deliveries("u1")) == 1
    assert results.undo("u1") == {"events_deleted": 2, "decisions_deleted": 1, "sent": []}
    late = batch_of([(b"2-0", _entry("u1", mine[2:])), (b"2-1", _entry("u3", [{**EVENTS[0], "import": "u3"}]))])
    assert results.write(late, undone=lambda ids: {"u1"} & ids) == 1
    assert (results.count_events("u1"), results.count_events("u3"), results.deliveries("u1")) == (0, 1, [])


def test_an_undone_import_keeps_its_sent_triggers_and_its_record_says_undone():
    from worker.sink.batch import DELIVERY_COLUMNS, IMPORT_COLUMNS, Batch, without

    def delivery(did, imp, state):
        return tuple({"delivery_id": did, "import_id": imp, "state": state}.get(c) for c in DELIVERY_COLUMNS)

    batch = Batch(events=[("u1", 2), ("u2", 3)], imports=[tuple({"import_id": "u1", "status": "completed"}.get(c)
                                                               for c in IMPORT_COLUMNS)],
                  deliveries={"a": delivery("a", "u1", "scheduled"), "b": delivery("b", "u1", "sent"),
                              "c": delivery("c", "u2", "scheduled")})
    kept = without(batch, {"u1"})
    assert kept.events == [("u2", 3)] and sorted(kept.deliveries) == ["b", "c"]
    assert kept.imports[0][IMPORT_COLUMNS.index("status")] == "undone"
