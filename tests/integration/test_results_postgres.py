"""The PostgreSQL results store against a real server the tests start: migrations, COPY batches that
replay harmlessly, questions, a sink draining into it, and clear errors for bad configuration."""
from __future__ import annotations

import psycopg
import pytest

from worker.errors import ConfigError, ResultsRefused, TransientError
from worker.sink.batch import batch_of
from worker.sink.drain import drain_once
from worker.sink.postgres import PostgresResults
from worker.sink.stored import EventQuery
from worker.store.embedded import free_port
from worker.store.outbox import Outbox

from ..unit.test_results_sqlite import (
    EVENTS,
    _entry,
    check_a_damaged_schema_is_named_and_made_again,
    check_a_person_answers_to_every_identifier_they_had,
    check_a_version_5_database_upgrades,
    check_an_older_database_upgrades,
    check_import_figures,
    check_late_duplicates,
    check_people_deliveries_and_imports,
)
from .helpers import run_import, write


def test_migrations_batches_and_questions(postgres):
    with pytest.raises(ConfigError, match="newer than this backfill"):
        postgres.db.execute("INSERT INTO schema_version VALUES (99)")
        postgres.check()
    postgres.db.execute("DELETE FROM schema_version WHERE version = 99")
    postgres.check()
    batch = batch_of([(b"1-0", _entry("i1", EVENTS))])
    assert postgres.write(batch) == 3 and postgres.write(batch) == 0  # the second: the conflict path
    ann = list(postgres.events(EventQuery(person="ann@example.com")))
    assert [(e.row, e.ts_ms, e.data) for e in ann] == [(2, 1700000000000, {"price": "9.99"}),
                                                         (4, 1700000200000, {"price": "1"})]
    assert [e.row for e in postgres.events(EventQuery(name="Ordered", since_ms=1700000100000))] == [4]


def test_values_the_binary_copy_cannot_carry_are_stored_or_refused_as_before(postgres):
    """Events are copied in COPY's binary format, which takes each value as its column's type: a number
    where a text goes is stored as its text, a row number over 32 bits is refused (not cut to 32 bits),
    a NUL refused with psycopg's message, as when they were copied as text."""
    def event(row: object, **fields: object) -> dict:
        return {"import": "b1", "row": row, "name": "Viewed", "person": {"id": "u1"}, "timestamp": 1700000000,
                "data": {}, **fields}

    assert postgres.write(batch_of([(b"1-0", _entry("b1", [event(2, id=123, person={"id": 42})]))])) == 1
    [stored] = postgres.events(EventQuery(import_id="b1"))
    assert (stored.event_id, stored.person) == ("123", "42")
    for bad, said in ((event(2**31), 'value "2147483648" is out of range for type integer'),
                      (event(-2**31 - 1), "out of range for type integer"),
                      (event(3, timestamp=10**16), "out of range for type bigint"),
                      (event(3, name="Or\x00dered"), r"PostgreSQL text fields cannot contain NUL \(0x00\) bytes")):
        with pytest.raises(ResultsRefused, match=said):
            postgres.write(batch_of([(b"2-0", _entry("b1", [bad]))]))
    assert [e.row for e in postgres.events(EventQuery(import_id="b1"))] == [2]
    keys = b"".join(bytes([n]) * 10 for n in (1, 2))  # (the claims are copied the same way)
    assert postgres.write(batch_of([(b"3-0", _entry("b1", [event(5), event(6)], keys=keys, hours=b"1:2"))])) == 2


def test_people_deliveries_and_imports_settle_whatever_the_order(postgres):
    check_people_deliveries_and_imports(postgres)


def test_an_imports_figures_are_counted_by_the_database(postgres):
    check_import_figures(postgres)


def test_a_dedupe_key_is_stored_once_whatever_redis_forgot(postgres):
    check_late_duplicates(postgres)


def test_a_person_answers_to_every_identifier_they_had(postgres):
    check_a_person_answers_to_every_identifier_they_had(postgres)


def test_an_older_database_upgrades(postgres, postgres_url):
    postgres.db.execute("DROP TABLE events, people, deliveries, imports, identifiers, event_keys, schema_version")
    check_an_older_database_upgrades(PostgresResults(postgres_url))


def test_a_version_5_database_upgrades(postgres, postgres_url):
    postgres.db.execute("DROP TABLE events, people, deliveries, imports, identifiers, event_keys, schema_version")
    check_a_version_5_database_upgrades(PostgresResults(postgres_url))


def test_a_damaged_schema_is_named_and_made_again(postgres):
    check_a_damaged_schema_is_named_and_made_again(postgres)
    assert postgres.place().endswith(f":{postgres.db.info.port}/{postgres.db.info.dbname}")
    assert "secret" not in postgres.place() and "@" not in postgres.place()


def test_a_sink_drains_an_import_into_postgres_once(store, workers, postgres, tmp_path):
    report = run_import(write(tmp_path, "p.csv", "email,event_name,event_id\n" + "".join(
        f"p{n}@example.com,Ordered,E{n}\n" for n in range(400))), create_people=True)
    outbox = Outbox(store.r, "pg-sink")
    outbox.ensure_group()
    while drain_once(outbox, postgres, batch=3, block_ms=50, claim_idle_ms=60_000).entries:
        pass
    assert postgres.count_events(report["import_id"]) == 400


def test_bad_database_configuration_gets_a_clear_error(postgres_url):
    with pytest.raises(TransientError, match="did not answer"):
        PostgresResults(f"postgresql://nobody:secret@127.0.0.1:{free_port()}/none")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("DROP SCHEMA IF EXISTS locked CASCADE")
        admin.execute("DROP ROLE IF EXISTS reader")
        admin.execute("CREATE ROLE reader LOGIN")
        admin.execute("CREATE SCHEMA locked")
        admin.execute("GRANT USAGE ON SCHEMA locked TO reader")  # it may look, not create tables
    try:
        with pytest.raises(ConfigError, match="refuses to create tables"):
            PostgresResults(postgres_url.replace("backfill@", "reader@") + "?options=-csearch_path%3Dlocked")
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("DROP SCHEMA locked CASCADE")
            admin.execute("DROP ROLE reader")


def test_an_undo_deletes_an_import_and_its_late_entries_are_dropped(postgres):
    mine = [{**e, "import": "u1"} for e in EVENTS]
    other = [{**e, "import": "u2"} for e in EVENTS]
    assert postgres.write(batch_of([(b"1-0", _entry("u1", mine[:2])), (b"1-1", _entry("u2", other))])) == 5
    assert postgres.undo("u1") == {"events_deleted": 2, "decisions_deleted": 0, "sent": []}
    # an entry of u1 that reaches a sink after the undo: the sink asks (under the lock) and drops it
    late = batch_of([(b"2-0", _entry("u1", mine[2:])), (b"2-1", _entry("u3", [{**EVENTS[0], "import": "u3"}]))])
    assert postgres.write(late, undone=lambda ids: {"u1"} & ids) == 1
    assert (postgres.count_events("u1"), postgres.count_events("u2"), postgres.count_events("u3")) == (0, 3, 1)
