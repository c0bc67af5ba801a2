"""Which results store the sinks write, and whether it is whole: the store registered in Redis (a host
with another one refuses, naming both), a schema checked table by table, a full disk said as such."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from worker import keys
from worker.errors import ResultsUnavailable
from worker.sink import registry
from worker.sink.drain import drain_once, run
from worker.sink.sqlite import SQLiteResults
from worker.store.outbox import Outbox

from .helpers import drain_all, run_import, write


def _host(tmp_path, name: str) -> dict[str, str]:
    """The environment of a host with its own home and no DATABASE_URL (the embedded SQLite store)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return {**env, "BACKFILL_HOME": str(tmp_path / name)}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The real CLI, run as on a host with this environment."""
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"
    return subprocess.run([exe, *args], env=env, capture_output=True, timeout=60)


def test_a_host_with_another_store_refuses_naming_both(store, tmp_path):
    first, second = _host(tmp_path, "a"), _host(tmp_path, "b")
    done = _cli(first, "db", "upgrade")
    assert done.returncode == 0 and b"registered" in done.stdout, done.stderr
    a_db, b_db = str(tmp_path / "a" / "results.db"), str(tmp_path / "b" / "results.db")
    for args in (("worker", "--no-beat"), ("sink",), ("db", "upgrade")):
        refused = _cli(second, *args)
        # one line says it (beside, at most, the warning of a Redis with no append-only file, as this one is)
        said = "".join(line for line in refused.stderr.decode().splitlines(True) if "append-only" not in line)
        assert refused.returncode == 1 and said.count("\n") == 1, (args, said)
        assert a_db in said and b_db in said and "DATABASE_URL" in said and "--no-sink" in said, said
        assert "backfill db register --replace" in said and "Traceback" not in said
    # The first host's own commands go on; the same database reached again is the same store.
    assert _cli(first, "db", "upgrade").returncode == 0
    same = _cli({**second, "DATABASE_URL": f"sqlite:///{a_db}"}, "db", "register")
    assert same.returncode == 0 and a_db.encode() in same.stdout
    # Moved on purpose: the second host's store becomes the registered one, and the first now refuses.
    moved = _cli(second, "db", "register", "--replace")
    assert moved.returncode == 0 and b"replacing" in moved.stdout and a_db.encode() in moved.stdout
    assert registry.registered(store.r).where.endswith(b_db)
    assert _cli(first, "sink").returncode == 1


def test_a_running_sink_stops_when_the_registration_moves_and_registers_again_when_it_is_lost(store, tmp_path):
    mine, other = SQLiteResults(tmp_path / "mine.db"), SQLiteResults(tmp_path / "other.db")
    for results in (mine, other):
        results.upgrade()
    outbox = Outbox(store.r, "guarded")
    registry.claim(store.r, mine)
    store.r.delete(keys.RESULTS_STORE)  # Redis lost it (restored from an older file): made again
    stop = threading.Event()
    failed: list[BaseException] = []

    def sink() -> None:
        try:
            run(outbox, mine, batch=5, block_ms=20, claim_idle_ms=60_000, stop=stop.is_set,
                registered=lambda: registry.claim(store.r, mine), registered_every_s=0.05)
        except BaseException as exc:  # noqa: BLE001 - what the test looks at
            failed.append(exc)

    thread = threading.Thread(target=sink)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while registry.registered(store.r) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert registry.registered(store.r).store_id == mine.store_id()
        registry.replace(store.r, registry.identity_of(other))
        thread.join(5)
        assert not thread.is_alive() and len(failed) == 1 and isinstance(failed[0], registry.OtherStore)
        assert str(tmp_path / "other.db") in str(failed[0]) and str(tmp_path / "mine.db") in str(failed[0])
    finally:
        stop.set()
        thread.join(5)


def test_db_upgrade_checks_every_table_column_and_index_not_only_the_version(store, tmp_path):
    env = {**_host(tmp_path, "h"), "DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    assert _cli(env, "db", "upgrade").stdout.startswith(b"applied 1")
    with sqlite3.connect(tmp_path / "r.db") as db:
        db.execute("DROP TABLE identifiers")
        db.execute("DROP INDEX events_by_cio")
        db.execute("ALTER TABLE people DROP COLUMN tags")
    refused = _cli(env, "events")  # a sink or a query refuses too
    assert refused.returncode == 1 and b"lacks tables identifiers; columns people.tags; indexes events_by_cio" \
        in refused.stderr, refused.stderr
    refused = _cli(env, "db", "upgrade")
    assert refused.returncode == 1 and b"identifiers" in refused.stderr and b"--repair" in refused.stderr
    assert b"already up to date" not in refused.stdout
    repaired = _cli(env, "db", "upgrade", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert b"made again: tables identifiers; columns people.tags; indexes events_by_cio" in repaired.stdout
    with sqlite3.connect(tmp_path / "r.db") as db:
        db.execute("DROP INDEX people_by_email")  # an index alone is always made again
    assert b"made again: indexes people_by_email" in _cli(env, "db", "upgrade").stdout
    assert _cli(env, "events").returncode == 0
    assert _cli(env, "db", "upgrade").stdout.strip().endswith(b"already up to date")


def test_a_full_disk_is_said_and_nothing_is_lost(store, workers, tmp_path):
    """SQLite stops at max_page_count as at the end of a disk (SQLITE_FULL, its transaction rolled back
    by itself): the sink says "disk full", not "cannot rollback", and stores everything once there is room."""
    report = run_import(write(tmp_path, "wide.csv", "email,event_name,note\n" + "".join(
        f"p{n}@example.com,Viewed,{'x' * 400}\n" for n in range(300))), create_people=True)
    results = SQLiteResults(tmp_path / "full.db")
    results.upgrade()
    pages = results.db.execute("PRAGMA page_count").fetchone()[0]
    results.db.execute(f"PRAGMA max_page_count = {pages + 3}")
    outbox = Outbox(store.r, "full-disk")
    outbox.ensure_group()
    with pytest.raises(ResultsUnavailable, match="disk full") as failed:
        drain_once(outbox, results, batch=50, block_ms=50, claim_idle_ms=60_000)
    assert "cannot rollback" not in str(failed.value) and "database or disk is full" in str(failed.value)
    assert store.r.xpending(keys.OUTBOX, keys.SINK_GROUP)["pending"] > 0  # read, not acknowledged
    assert results.count_events(report["import_id"]) == 0 and not results.db.in_transaction
    results.db.execute("PRAGMA max_page_count = 1073741823")
    drain_all(outbox, results, claim_idle_ms=0)
    assert results.count_events(report["import_id"]) == 300
    assert store.r.xlen(keys.OUTBOX) == 0


def test_a_sink_started_before_its_database_waits_for_it(store, workers, tmp_path):
    """`backfill sink` started while PostgreSQL is still down tries again until it answers, then stores
    (a one-off `--retry-dead` says so and exits instead)."""
    from .postgres import PrivatePostgres

    server = PrivatePostgres()
    env = {**os.environ, "DATABASE_URL": server.url, "BACKFILL_HOME": str(tmp_path / "home")}
    server.start()
    assert _cli(env, "db", "upgrade").returncode == 0
    server.crash()  # down when the sink starts (a host rebooting: the sink's unit came up first)
    once = _cli(env, "sink", "--retry-dead")
    assert once.returncode == 1 and b"did not answer" in once.stderr and b"Traceback" not in once.stderr
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"
    log = (tmp_path / "sink.log").open("wb")
    sink = subprocess.Popen([exe, "sink"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while b"tries again" not in (tmp_path / "sink.log").read_bytes() and time.monotonic() < deadline:
            assert sink.poll() is None, (tmp_path / "sink.log").read_text()
            time.sleep(0.1)
        assert sink.poll() is None
        server.start()
        report = run_import(write(tmp_path, "e.csv", "email,event_name\nann@example.com,Seen\n"), create_people=True)
        deadline = time.monotonic() + 60
        while store.imports.state(report["import_id"]).get("outbox_stored") != \
                store.imports.state(report["import_id"]).get("outbox_entries") and time.monotonic() < deadline:
            assert sink.poll() is None, (tmp_path / "sink.log").read_text()
            time.sleep(0.2)
        state = store.imports.state(report["import_id"])
        assert state.get("outbox_entries") and state["outbox_stored"] == state["outbox_entries"]
    finally:
        sink.terminate()
        sink.wait(30)
        log.close()
        server.destroy()
