"""An outbox entry the results database refuses (a NUL in a file name, a value over a limit) is set aside
as a dead letter with the database's message; every other entry of its batch is stored; `backfill sink
--retry-dead` stores it once the cause is fixed. A database that is down refuses nothing: its batch is
tried again whole. SQLite and PostgreSQL alike."""
from __future__ import annotations

import os
import sqlite3

import orjson
import pytest

from producers.api import ImportHandle
from worker import keys
from worker.errors import TransientError
from worker.ops.metrics import RedisCollector
from worker.ops.report import build_report
from worker.settings import reset_settings
from worker.sink.drain import drain_once, retry_dead
from worker.sink.sqlite import SQLiteResults
from worker.store.outbox import Outbox, dead_fields, dead_letters

from .postgres import PrivatePostgres

GOOD = [f"good{n}" for n in range(6)]


def _event(import_id: str, row: int, **more: object) -> dict:
    return {"import": import_id, "row": row, "name": "Ordered", "person": {"email": f"p{row}@example.com"},
            "timestamp": 1700000000 + row, "data": {"n": row}, **more}


def _record(import_id: str, source: str) -> dict:
    return {"import_id": import_id, "status": "completed", "created_ms": 1, "finished_ms": 2,
            "report": {"status": "completed", "kind": "events", "source": source, "imported": 2}}


def _finished(store, import_id: str) -> None:
    """An import that ended, its report written (as finalize writes it)."""
    report = {**build_report({"rows": "2", "imported": "2"}, {"import_id": import_id, "kind": "events",
                                                             "source": f"{import_id}.csv"})}
    store.r.hset(keys.import_hash(import_id), mapping={"status": "completed", "report": orjson.dumps(report)})


def _add(store, import_id: str, **fields: bytes) -> None:
    """An outbox entry of ``import_id`` as the commit scripts append it (counted in its outbox_entries)."""
    store.r.xadd(keys.OUTBOX, {"import": import_id, **fields})
    store.r.hincrby(keys.import_hash(import_id), "outbox_entries", 1)


def _events(store, import_id: str, *events: dict) -> None:
    _add(store, import_id, events=b"\n".join(orjson.dumps(e) for e in events), count=str(len(events)).encode())


def _imports(store, bad: dict[str, list[dict]], records: dict[str, str]) -> None:
    """Imports ``good0..5`` (two events and a record each) with the ``bad`` imports' entries among them,
    so every entry lands in one batch; ``records``: a finished import's record, by its source name."""
    for n, import_id in enumerate(GOOD):
        _finished(store, import_id)
        _events(store, import_id, _event(import_id, 2), _event(import_id, 3))
        _add(store, import_id, record=orjson.dumps(_record(import_id, f"{import_id}.csv")))
        for bad_id, events in list(bad.items())[n:n + 1]:
            _finished(store, bad_id)
            _events(store, bad_id, *events)
        for bad_id, source in list(records.items())[n:n + 1]:
            _finished(store, bad_id)
            _add(store, bad_id, record=orjson.dumps(_record(bad_id, source)))


def _drain(store, results) -> int:
    """One batch holding the whole outbox; how many entries were set aside."""
    outbox = Outbox(store.r, "sink-a")
    outbox.ensure_group()
    waiting = store.r.xlen(keys.OUTBOX)
    drained = drain_once(outbox, results, batch=100, block_ms=50, claim_idle_ms=60_000)
    assert drained.entries == waiting  # one batch: all of them
    return drained.dead


def _dead(store) -> dict[str, str]:
    """import id -> the database's message, of every dead letter."""
    found = {}
    for _, fields in store.r.xrange(keys.SINK_DEAD):
        original, message = dead_fields(fields)
        found[original[b"import"].decode()] = message
    return found


def _metric(store, name: str) -> float:
    return next(s.value for family in RedisCollector(store.r).collect() for s in family.samples if s.name == name)


def _check_good_stored(store, results) -> None:
    for import_id in GOOD:
        assert results.count_events(import_id) == 2, import_id
        assert results.import_record(import_id)["source"] == f"{import_id}.csv"
        report = ImportHandle(import_id).report()
        assert report["stored"] is True and report["dead_letters"] == 0 and report["events_stored"] == 2
    assert store.r.xlen(keys.OUTBOX) == 0  # every entry stored or set aside: acknowledged and trimmed
    assert store.r.xpending(keys.OUTBOX, keys.SINK_GROUP)["pending"] == 0


def _not_all_stored(import_id: str) -> None:
    report = ImportHandle(import_id).report()
    assert report["stored"] is False and report["dead_letters"] == 1
    # waiting for it to be stored ends: nothing is left for a sink to write
    assert ImportHandle(import_id).wait(timeout=2, stored=True) is not None


def test_sqlite_refusals_are_set_aside_and_the_rest_stored(store, tmp_path):
    results = SQLiteResults(tmp_path / "results.db")
    results.upgrade()
    results.db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 50_000)  # a limit the long value is over
    long_event = _event("long", 2, data={"note": "x" * 60_000})
    huge = {"cio_id": "a9", "_v": "1", "email": "h@example.com", "created_at": "1e30"}  # over 64 bits
    _imports(store, {"long": [long_event], "nul": [_event("nul", 2, name="Or\x00dered")]},
             {"named": "evil\x00.csv"})
    _add(store, "huge", people=orjson.dumps([huge]))
    _finished(store, "huge")
    assert _drain(store, results) == 2
    _check_good_stored(store, results)
    assert results.count_events("nul") == 1 and results.import_record("named")["source"] == "evil\x00.csv"  # SQLite takes a NUL
    assert _dead(store) == {"long": "string or blob too big", "huge": "Python int too large to convert to SQLite INTEGER"}
    assert _metric(store, "backfill_sink_dead_letters_total") == 2
    assert _metric(store, "backfill_sink_dead_letters_held") == 2
    _not_all_stored("long")
    # the cause fixed (the limit raised): the long entry is stored again, the other stays with its message
    results.db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_000_000_000)
    stored, left = retry_dead(dead_letters(store.r), results, Outbox(store.r, "retry").undone, batch=50)
    assert stored == 1 and [(i, m) for _, i, m in left] == [(b"huge", "Python int too large to convert to SQLite INTEGER")]
    assert results.count_events("long") == 1 and ImportHandle("long").report()["stored"] is True
    assert ImportHandle("long").report()["dead_letters"] == 0
    assert _dead(store) == {"huge": "Python int too large to convert to SQLite INTEGER"}
    assert _metric(store, "backfill_sink_dead_letters_total") == 2 and _metric(store, "backfill_sink_dead_letters_held") == 1
    # again: nothing more is stored, nothing counted twice
    assert retry_dead(dead_letters(store.r), results, Outbox(store.r, "retry").undone, batch=50)[0] == 0
    assert int(store.r.hget(keys.import_hash("long"), "outbox_stored")) == 1


def test_a_locked_sqlite_file_is_retried_whole_and_sets_nothing_aside(store, tmp_path):
    results = SQLiteResults(tmp_path / "results.db")
    results.upgrade()
    results.db.execute("PRAGMA busy_timeout=100")
    _imports(store, {}, {})
    other = sqlite3.connect(tmp_path / "results.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _drain(store, results)
    assert store.r.xlen(keys.SINK_DEAD) == 0 and _metric(store, "backfill_sink_dead_letters_total") == 0
    assert store.r.xpending(keys.OUTBOX, keys.SINK_GROUP)["pending"] == 2 * len(GOOD)  # kept for the retry
    other.execute("ROLLBACK")
    outbox = Outbox(store.r, "sink-a")
    assert drain_once(outbox, results, batch=100, block_ms=50, claim_idle_ms=0).entries == 2 * len(GOOD)
    _check_good_stored(store, results)


def test_postgres_refusals_are_set_aside_and_retry_dead_stores_them_after_a_fix(store, postgres, postgres_url,
                                                                                backfill):
    postgres.db.execute("ALTER TABLE imports ADD CONSTRAINT short_source CHECK (length(source) <= 40)")
    long_person = {"email": os.urandom(10_000).hex() + "@example.com"}  # over the index's row size
    _imports(store, {"nul": [_event("nul", 2, name="Or\x00dered")],
                     "wide": [_event("wide", 2, person=long_person)]},
             {"named": "evil\x00.csv", "long": "x" * 60 + ".csv"})
    assert _drain(store, postgres) == 4
    _check_good_stored(store, postgres)
    dead = _dead(store)
    assert dead["nul"] == dead["named"] == "PostgreSQL text fields cannot contain NUL (0x00) bytes"
    assert "index row" in dead["wide"] and "short_source" in dead["long"]
    assert _metric(store, "backfill_sink_dead_letters_total") == 4
    for import_id in ("nul", "named", "wide", "long"):
        _not_all_stored(import_id)
    assert "4 dead letter(s)" in backfill("top", "--once").stdout.decode()
    shown = backfill("report", "long").stdout.decode()
    assert "not all: 1 outbox entry refused by the database, set aside as dead letters" in shown
    # the cause of one fixed: `backfill sink --retry-dead` stores it and lists the others with their message
    postgres.db.execute("ALTER TABLE imports DROP CONSTRAINT short_source")
    os.environ["DATABASE_URL"] = postgres_url
    reset_settings()
    try:
        retried = backfill("sink", "--retry-dead")
    finally:
        del os.environ["DATABASE_URL"]
        reset_settings()
    said = retried.stdout.decode()
    assert retried.returncode == 1 and "stored 1 dead letter(s); 3 still refused" in said
    assert "(import nul): still refused: PostgreSQL text fields cannot contain NUL (0x00) bytes" in said
    assert postgres.import_record("long")["source"] == "x" * 60 + ".csv"
    assert ImportHandle("long").report()["stored"] is True and ImportHandle("long").report()["dead_letters"] == 0
    assert set(_dead(store)) == {"named", "nul", "wide"}
    assert _metric(store, "backfill_sink_dead_letters_held") == 3


def test_a_stopped_postgres_is_retried_whole_and_sets_nothing_aside(store):
    from worker.sink.postgres import PostgresResults

    server = PrivatePostgres()
    server.start()
    try:
        results = PostgresResults(server.url)
        results.upgrade()
        _imports(store, {}, {})
        server.crash()
        with pytest.raises(TransientError):
            _drain(store, results)
        assert store.r.xlen(keys.SINK_DEAD) == 0 and _metric(store, "backfill_sink_dead_letters_total") == 0
        assert store.r.xpending(keys.OUTBOX, keys.SINK_GROUP)["pending"] == 2 * len(GOOD)
        server.start()
        assert drain_once(Outbox(store.r, "sink-a"), results, batch=100, block_ms=50,
                          claim_idle_ms=0).entries == 2 * len(GOOD)
        _check_good_stored(store, results)
        results.close()
    finally:
        server.destroy()
