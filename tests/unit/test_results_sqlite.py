"""The SQLite results store: migrations, idempotent batches, queries. A real SQLite file, no Redis."""
from __future__ import annotations

import orjson
import pytest

from worker.errors import ConfigError
from worker.sink.schema import LATEST
from worker.sink.sqlite import SQLiteResults
from worker.sink.stored import EventQuery, event_rows


def _entry(import_id: str, events: list[dict]) -> dict[bytes, bytes]:
    return {b"import": import_id.encode(), b"chunk": b"0", b"count": str(len(events)).encode(),
            b"events": orjson.dumps(events)}


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
    rows = event_rows(_entry("i1", EVENTS))
    assert results.write_events(rows) == 3 and results.write_events(rows) == 0  # a batch written again
    assert results.count_events("i1") == 3
    ann = list(results.events(EventQuery(person="ann@example.com")))
    assert [(e.row, e.name, e.ts_ms, e.data) for e in ann] == [(2, "Ordered", 1700000000000, {"price": "9.99"}),
                                                                 (4, "Ordered", 1700000200000, {"price": "1"})]
    assert ann[0].event_id == "E-1" and ann[0].person_kind == "email"
    assert [e.row for e in results.events(EventQuery(name="Ordered", since_ms=1700000100000))] == [4]
    assert [e.row for e in results.events(EventQuery(until_ms=1700000100600))] == [2, 3]
    assert [e.row for e in results.events(EventQuery(import_id="i1", limit=1))] == [2]
