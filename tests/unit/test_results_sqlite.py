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


def _keyed(import_id: str, rows: dict[int, bytes], hours: str = "480000:480720") -> dict[bytes, bytes]:
    """An entry of events at ``rows`` (row -> its 10-byte dedupe key) committed at hour 480000, as commit.lua
    writes it with the events' keys."""
    events = [{"import": import_id, "row": row, "name": "Ordered", "person": {"email": f"p{row}@example.com"},
               "timestamp": 1700000000, "data": {}, "id": f"E{row}"} for row in rows]
    return {**_entry(import_id, events), b"keys": b"".join(rows.values()), b"hours": hours.encode()}


def check_late_duplicates(results) -> None:
    """A dedupe key is held by one stored event within its window, whatever Redis forgot: a late duplicate
    (the same key at another row, by another entry or within one batch) is not stored and is counted in
    its entry; a batch written again is no late duplicate; an expired claim, or one whose event was taken
    back (undo), is taken over. Shared by both backends' tests."""
    k = [bytes([n]) * 10 for n in range(1, 8)]
    first = batch_of([(b"1-0", _keyed("i1", {2: k[1], 3: k[2], 4: k[3]}))])
    assert results.write(first) == 3 and first.late == {}
    again = batch_of([(b"1-0", _keyed("i1", {2: k[1], 3: k[2], 4: k[3]}))])
    assert results.write(again) == 0 and again.late == {}  # written again: the same events hold the keys
    # Redis forgot rows 2-4's marks: a later chunk imports the same events at rows 102 and 103
    late = batch_of([(b"2-0", _keyed("i1", {102: k[1], 103: k[4]})), (b"2-1", _keyed("i2", {7: k[3], 8: k[5], 9: k[5]}))])
    assert results.write(late) == 2 and late.late == {b"2-0": 1, b"2-1": 2}
    assert sorted(e.row for e in results.events(EventQuery(import_id="i1", limit=99))) == [2, 3, 4, 103]
    assert [e.row for e in results.events(EventQuery(import_id="i2", limit=99))] == [8]
    # past its window (expires at hour 480720) a key is free again: Redis sees the event as new too
    later = batch_of([(b"3-0", _keyed("i3", {5: k[2]}, hours="480721:481441"))])
    assert results.write(later) == 1 and later.late == {}
    # an import taken back frees its keys
    results.undo("i2")
    back = batch_of([(b"4-0", _keyed("i4", {6: k[5]}))])
    assert results.write(back) == 1 and back.late == {}
    assert results.key_holders([k[5], k[2]]) == {k[5]: ("i4", 6), k[2]: ("i3", 5)}


def test_a_dedupe_key_is_stored_once_whatever_redis_forgot(tmp_path):
    results = SQLiteResults(tmp_path / "r.db")
    results.upgrade()
    check_late_duplicates(results)


def test_a_new_database_refuses_until_upgraded_and_a_newer_one_is_refused(tmp_path):
    results = SQLiteResults(tmp_path / "r.db")
    with pytest.raises(ConfigError, match="backfill db upgrade"):
        results.check()
    assert results.upgrade() == list(range(1, LATEST + 1)) and results.upgrade() == []
    results.check()
    results.db.execute("INSERT INTO schema_version VALUES (?)", (LATEST + 1,))
    with pytest.raises(ConfigError, match="newer than this backfill"):
        results.check()


def check_import_figures(results) -> None:
    """An import's events counted by name, their times as a histogram, its trigger decisions by campaign and
    state: what the web console pictures, counted by the database. Shared by both backends' tests."""
    check_people_deliveries_and_imports(results)
    assert results.event_names("i1") == [("Ordered", 2), ("Viewed", 1)] and results.event_names("i1", 1) == [("Ordered", 2)]
    # 1700000000000, 1700000100500 and 1700000200000 in 4 equal spans of the 200,001 ms from the first to the last
    assert results.event_times("i1", 4) == (1700000000000, 1700000200000, [1, 0, 1, 1])
    assert results.decisions("i1") == [("Late", "discarded", 1), ("Welcome", "outside_window", 1), ("Welcome", "sent", 1)]
    assert (results.event_names("nope"), results.event_times("nope"), results.decisions("nope")) == ([], None, [])


def test_an_imports_figures_are_counted_by_the_database(tmp_path):
    results = SQLiteResults(tmp_path / "r.db")
    results.upgrade()
    check_import_figures(results)


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


def _event(row: int, person: dict, name: str = "Viewed", import_id: str = "s1") -> dict:
    return {"import": import_id, "row": row, "name": name, "person": person, "timestamp": 1700000000 + row, "data": {}}


def check_a_person_answers_to_every_identifier_they_had(results) -> None:
    """A person re-identified a -> b -> c by aliases, whose e-mail changed (by cio_id) and whose anonymous
    id an identify tied, has events stored under each of these names: any of them asks for all of them,
    and for no one else's. The e-mail they left, now another person's, names that person. Shared by both
    backends' tests."""
    entries = [
        # a people chunk creates a1 (id a, e-mail Ann@Old.example): its state and the index entries it set
        (b"1000-0", {b"import": b"p1", b"people": orjson.dumps([_person("a1", 1, id="a", email="Ann@Old.example")]),
                     b"ids": orjson.dumps([["id", "a", "a1"], ["email", "ann@old.example", "a1"]])}),
        (b"1001-0", _entry("e1", [_event(2, {"id": "a"}, import_id="e1")], cio={"a": "a1"})),
        # an alias a -> b, then b -> c: the old ids keep finding them in the directory
        (b"2000-0", {b"import": b"s1", b"people": orjson.dumps([_person("a1", 2, id="b", email="Ann@Old.example")]),
                     b"ids": orjson.dumps([["id", "b", "a1"]])}),
        (b"2001-0", _entry("s1", [_event(3, {"id": "b"})], cio={"b": "a1"})),
        (b"3000-0", {b"import": b"s1", b"people": orjson.dumps([_person("a1", 3, id="c", email="Ann@Old.example")]),
                     b"ids": orjson.dumps([["id", "c", "a1"], ["anonymous", "anon-7", "a1"]])}),
        # the events held for anon-7, moved to the person by the identify that tied it
        (b"3001-0", _entry("s1", [_event(4, {"id": "c"})], cio={"c": "a1"})),
        (b"3002-0", _entry("e2", [_event(5, {"email": "ANN@old.example"}, import_id="e2")], cio={"ann@old.example": "a1"})),
        # the e-mail changed through cio_id; another person takes the old one
        (b"4000-0", {b"import": b"p2", b"people": orjson.dumps([_person("a1", 4, id="c", email="ann@new.example"),
                                                               _person("b9", 1, id="bob", email="ann@old.example")]),
                     b"ids": orjson.dumps([["email", "ann@new.example", "a1"], ["id", "bob", "b9"],
                                           ["email", "ann@old.example", "b9"]])}),
        (b"4001-0", _entry("e3", [_event(6, {"email": "ann@new.example"}, import_id="e3"),
                                  _event(7, {"email": "ann@old.example"}, import_id="e3")],
                           cio={"ann@new.example": "a1", "ann@old.example": "b9"})),
    ]
    # in two batches, the later one first (sinks write in any order), then all again (a replay)
    for part in (entries[4:], entries[:4], entries):
        results.write(batch_of(part))
    everything = [2, 3, 4, 5, 6]
    for name in ("a", "b", "c", "ANN@new.example", "anon-7", "a1"):
        found = list(results.events(EventQuery(person=name)))
        assert [e.row for e in found] == everything, name
        assert {e.cio_id for e in found} == {"a1"}
    assert [e.row for e in results.events(EventQuery(person="ann@old.example"))] == [7]  # b9's now
    assert [e.row for e in results.events(EventQuery(person="b", name="Viewed", limit=2))] == [2, 3]
    for name in ("a", "b", "anon-7"):
        [person] = results.people_known_as(name)
        assert (person["cio_id"], person["id"], person["email"]) == ("a1", "c", "ann@new.example")
    assert results.people_known_as("a", "email") == [] and results.people_known_as("anon-7", "cio_id") == []
    assert [p["cio_id"] for p in results.people_known_as("ann@old.example")] == ["b9"]
    seen = {(k, v): (first, last) for k, v, cio, first, last in results._fetch(
        "SELECT kind, value, cio_id, first_ms, last_ms FROM identifiers WHERE cio_id = 'a1'", ())}
    assert seen == {("id", "a"): (1000, 1000), ("id", "b"): (2000, 2000), ("id", "c"): (3000, 4000),
                    ("email", "ann@old.example"): (1000, 3000), ("email", "ann@new.example"): (4000, 4000),
                    ("anonymous", "anon-7"): (3000, 3000)}
    results.forget_people(["b9"])
    assert results.people_known_as("bob") == []


def check_an_older_database_upgrades(results) -> None:
    """A database at schema version 3 (events without cio_id, no identifiers) upgrades: its events get
    the cio_id of the person their identifier names now (an e-mail only when one person has it), and its
    people's ids and e-mails become identifiers. Shared by both backends' tests (``results`` is empty)."""
    from worker.sink.schema import MIGRATIONS

    for version in (1, 2, 3):
        for sql in MIGRATIONS[version]:
            results._execute(sql, ())
        results._execute(f"INSERT INTO schema_version VALUES ({version})", ())
    mark = results.MARK
    old = [("o1", 2, "id", "u1", "Viewed", 1000, None, "{}"), ("o1", 3, "email", "ann@example.com", "Viewed", 2000,
                                                               None, "{}"),
           ("o1", 4, "email", "shared@example.com", "Viewed", 3000, None, "{}"),
           ("o1", 5, "id", "gone", "Viewed", 4000, None, "{}")]
    for row in old:
        results._execute(f"INSERT INTO events VALUES ({', '.join([mark] * 8)})", row)
    for cio, pid, email in (("c1", "u1", "Ann@Example.com"), ("c2", "u2", "shared@example.com"),
                            ("c3", "u3", "Shared@example.com")):
        results._execute(f"INSERT INTO people (cio_id, id, email, attributes, topics, version) VALUES "
                         f"({mark}, {mark}, {mark}, '{{}}', '{{}}', 1)", (cio, pid, email))
    with pytest.raises(ConfigError, match="backfill db upgrade"):
        results.check()
    assert results.upgrade() == list(range(4, LATEST + 1))
    results.check()
    stored = {e.row: e.cio_id for e in results.events(EventQuery(import_id="o1"))}
    assert stored == {2: "c1", 3: "c1", 4: None, 5: None}
    assert [e.row for e in results.events(EventQuery(person="ANN@example.com"))] == [2, 3]  # (one by its id)
    assert [e.row for e in results.events(EventQuery(person="u1"))] == [2, 3]
    assert [e.row for e in results.events(EventQuery(person="shared@example.com"))] == [4]  # by identifier
    assert [p["cio_id"] for p in results.people_known_as("shared@example.com")] == ["c2", "c3"]


def test_a_person_answers_to_every_identifier_they_had(tmp_path):
    results = SQLiteResults(tmp_path / "r.db")
    results.upgrade()
    check_a_person_answers_to_every_identifier_they_had(results)


def test_an_older_database_upgrades(tmp_path):
    check_an_older_database_upgrades(SQLiteResults(tmp_path / "r.db"))


def check_a_version_5_database_upgrades(results) -> None:
    """A database at schema version 5 (a full index of events by person) upgrades to version 6 (an index of
    only the events stored without a cio_id): what it holds answers as before, by cio_id or by identifier;
    an undo asks whether another import's events are a person's by cio_id, or name them without one.
    Shared by both backends' tests (``results`` is empty)."""
    from worker.sink.schema import MIGRATIONS

    for version in range(1, 6):
        results.apply([*MIGRATIONS[version], f"INSERT INTO schema_version VALUES ({version})"])
    assert "events_by_person" in results.shape().indexes
    mark = results.MARK
    for row in (("o1", 2, "email", "ann@example.com", "Viewed", 1000, None, "{}", "c1"),
                ("o1", 3, "id", "u1", "Viewed", 2000, None, "{}", None),  # (stored before version 4)
                ("o2", 2, "id", "u1", "Bought", 3000, None, "{}", "c1"),
                ("o2", 3, "email", "bob@example.com", "Viewed", 4000, None, "{}", "c2")):
        results._execute(f"INSERT INTO events VALUES ({', '.join([mark] * 9)})", row)
    results._execute(f"INSERT INTO people (cio_id, id, email, attributes, topics, version) VALUES "
                     f"({mark}, {mark}, {mark}, '{{}}', '{{}}', 1)", ("c1", "u1", "ann@example.com"))
    with pytest.raises(ConfigError, match="backfill db upgrade"):
        results.check()
    assert results.upgrade() == [6] == list(range(6, LATEST + 1))
    results.check()
    indexes = results.shape().indexes
    assert "events_by_person" not in indexes and indexes["events_by_person_no_cio"] == "events"
    for who in ("ann@example.com", "u1", "c1"):
        assert [(e.import_id, e.row) for e in results.events(EventQuery(person=who))] == \
            [("o1", 2), ("o1", 3), ("o2", 2)], who
    # no stored person: its cio_id, or its identifier among the events stored without one
    assert [e.row for e in results.events(EventQuery(person="c2"))] == [3]
    assert [e.row for e in results.events(EventQuery(person="nobody@example.com"))] == []
    assert results.named_elsewhere("o1", "c1", "ann@example.com")  # o2's row 2 is c1's
    assert results.named_elsewhere("o2", "c9", "u1")  # o1's row 3 names u1 without a cio_id
    assert not results.named_elsewhere("o1", "c9", "bob@example.com")  # o2's row 3 is c2's
    assert not results.named_elsewhere("o2", "c2", "bob@example.com")


def test_a_version_5_database_upgrades_and_its_person_queries_use_the_indexes(tmp_path):
    results = SQLiteResults(tmp_path / "r.db")
    check_a_version_5_database_upgrades(results)
    query = EventQuery(cio_ids=("c1",), persons=("ann@example.com", "c1", "u1"))
    where, args = query.where()
    plan = " ".join(step[-1] for step in results._fetch(f"EXPLAIN QUERY PLAN SELECT * FROM events {where}", tuple(args)))
    assert "events_by_cio" in plan and "events_by_person_no_cio" in plan and "SCAN" not in plan, plan
    # a person and a name (or an import): the person's indexes, not a scan of every event of that name
    query = EventQuery(cio_ids=("c1",), persons=("ann@example.com",), name="Viewed", import_id="o1")
    where, args = query.where()
    plan = " ".join(step[-1] for step in results._fetch(f"EXPLAIN QUERY PLAN SELECT * FROM events {where}", tuple(args)))
    assert "events_by_cio" in plan and "events_by_person_no_cio" in plan and "events_by_name" not in plan, plan
    assert [e.row for e in results.events(EventQuery(person="u1", name="Viewed"))] == [2, 3]
    assert [e.row for e in results.events(EventQuery(person="u1", import_id="o2"))] == [2]
    for sql, args in (("cio_id = ? AND import_id <> ?", ("c1", "o1")),
                      ("cio_id IS NULL AND person = ? AND import_id <> ?", ("u1", "o2"))):
        plan = " ".join(step[-1] for step in results._fetch(f"EXPLAIN QUERY PLAN SELECT 1 FROM events WHERE {sql}", args))
        assert "USING INDEX" in plan and "SCAN" not in plan, plan


def check_a_damaged_schema_is_named_and_made_again(results) -> None:
    """A database at the latest version with a table, a column and an index dropped by hand: the check
    names them (the version alone says nothing), indexes are made again by themselves, tables and
    columns only when asked (empty), and a store keeps one id. Shared by both backends' tests."""
    results.upgrade()
    results.check()
    assert results.verify() == ""
    store_id = results.store_id()
    assert len(store_id) == 32 and results.store_id() == store_id
    results.apply(["DROP INDEX events_by_name"])
    with pytest.raises(ConfigError, match="lacks indexes events_by_name: run `backfill db upgrade`"):
        results.check()
    assert results.verify() == "indexes events_by_name"
    results.check()
    results.apply(["DROP TABLE deliveries", "ALTER TABLE people DROP COLUMN tags"])
    with pytest.raises(ConfigError, match="lacks tables deliveries; columns people.tags"):
        results.check()
    with pytest.raises(ConfigError, match="--repair` to create them empty"):
        results.verify()
    assert results.verify(repair=True) == "tables deliveries; columns people.tags"
    results.check()
    assert results.version() == LATEST and results.store_id() == store_id
    # a table made again gets its indexes as the last migration made them (version 6 dropped and remade two)
    results.apply(["DROP TABLE events"])
    assert results.verify(repair=True) == "tables events"
    indexes = {name for name, table in results.shape().indexes.items() if table == "events"}
    assert {"events_by_name", "events_by_cio", "events_by_person_no_cio"} <= indexes and "events_by_person" not in indexes
    results.check()
    results.apply(["ALTER TABLE imports DROP COLUMN report"])  # made with its table, NOT NULL: no way back
    with pytest.raises(ConfigError, match="imports.report cannot be added back: restore the database"):
        results.verify(repair=True)


def test_a_damaged_schema_is_named_and_made_again(tmp_path):
    check_a_damaged_schema_is_named_and_made_again(SQLiteResults(tmp_path / "r.db"))


def test_the_expected_schema_is_what_the_migrations_make(tmp_path):
    """The schema read from the migrations' text is the one SQLite has after running them."""
    from worker.sink.schema import BOOKKEEPING, expected_shape

    results = SQLiteResults(tmp_path / "r.db")
    results.upgrade()
    found = results.shape()
    for table in ("schema_version", "store_meta"):
        assert f"TABLE IF NOT EXISTS {table}" in " ".join(BOOKKEEPING)
        del found.tables[table]
    want = expected_shape()
    assert found.tables == want.tables
    assert {name: table for name, table in found.indexes.items() if not name.startswith("sqlite_")} == want.indexes


def test_a_new_file_has_8_kib_pages_and_checkpoints_as_often_as_before(tmp_path):
    """A file made now has 8 KiB pages; one made before keeps its 4 KiB. Either way the WAL is checkpointed
    (made durable, with synchronous=NORMAL) every ~4 MB of it, as with 4 KiB pages before."""
    import sqlite3

    def pragmas(results: SQLiteResults) -> tuple[int, int, str, int]:
        return tuple(results.db.execute(f"PRAGMA {name}").fetchone()[0]
                     for name in ("page_size", "wal_autocheckpoint", "journal_mode", "synchronous"))

    results = SQLiteResults(tmp_path / "new.db")
    results.upgrade()
    assert pragmas(results) == (8192, 500, "wal", 1)  # (1: NORMAL)
    results.close()
    assert pragmas(SQLiteResults(tmp_path / "new.db")) == (8192, 500, "wal", 1)
    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("PRAGMA page_size=4096")
    old.execute("CREATE TABLE t (x)")
    old.close()
    assert pragmas(SQLiteResults(tmp_path / "old.db")) == (4096, 1000, "wal", 1)
