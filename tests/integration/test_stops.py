"""Imports that stop before their end: cancelled by a user, or interrupted because their producer died.

Each test runs on a Redis of its own with a worker started when the test wants it, so chunks can be
held in the queue while the producer is stopped.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BACKFILL = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"


@pytest.fixture
def own_redis(tmp_path):
    """A private Redis and a store on it, no worker yet; producers and sweeps run as processes of their own."""
    from worker.store import Store, connect
    from worker.store.embedded import start_private

    server, url = start_private(tmp_path / "redis")
    processes: list = []
    yield url, Store(connect(url)), processes
    from producers.demo import stop_workers

    stop_workers(processes)
    server.kill()
    server.wait()


def _env(url: str) -> dict:
    return {**os.environ, "REDIS_URL": url, "BACKFILL_MAX_INFLIGHT_CHUNKS": "4", "BACKFILL_CHUNK_ROWS": "50"}


def _backfill(url: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([BACKFILL, *args], env=_env(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _sweep(url: str) -> dict:
    """One sweep in a process of its own, with a producer timeout of 0.1 s."""
    code = ("import dataclasses, orjson\n"
            "from producers.api import default_context\nfrom worker import tasks\nfrom worker.ops import sweeper\n"
            "s = sweeper.sweep(default_context().store, 600, send_chunk=None, fail_chunk=None, send_notify=None,\n"
            "    send_report=lambda i: tasks.finalize_import.apply_async((i,)), producer_timeout_s=0.1)\n"
            "print(orjson.dumps(dataclasses.asdict(s)).decode())")
    done = subprocess.run([sys.executable, "-c", code], env=_env(url), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    import orjson

    return orjson.loads(done.stdout.splitlines()[-1])


def _handle(st, import_id: str):
    from producers.api import ImportHandle
    from worker.context import Context
    from worker.settings import get_settings

    return ImportHandle(import_id, Context(get_settings(), st, "this test's Redis"))


def _queued_four(st) -> str:
    """The import whose producer stored 4 chunks and now waits for room (no worker)."""
    _wait_until(lambda: st.r.zcard("bf:producing") == 1 and int(st.imports.state(
        st.imports.recent(1)[0]).get("chunks_queued", 0)) == 4)
    return st.imports.recent(1)[0]


def _file(tmp_path, rows: int) -> Path:
    path = tmp_path / "big.csv"
    path.write_text("email,event_name,time\n" + "".join(
        f"p{n}@example.com,Ordered,2024-03-01T10:{n // 60 % 60:02}:{n % 60:02}Z\n" for n in range(rows)))
    return path


def _start_worker(url, processes, tmp_path):
    from producers.demo import start_workers

    processes += start_workers(url, 1, beat=False, log_dir=tmp_path, extra_env={"BACKFILL_CHUNK_ROWS": "50"})
    log = tmp_path / "worker0.log"
    _wait_until(lambda: log.exists() and " ready." in log.read_text(), timeout=60)


def _wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_cancel_stops_the_producer_skips_queued_chunks_and_reports(own_redis, tmp_path):
    url, st, processes = own_redis
    producer = _backfill(url, "import", str(_file(tmp_path, 1000)), "--create-people")
    iid = _queued_four(st)
    cancel = subprocess.run([BACKFILL, "cancel", iid], env=_env(url), capture_output=True, timeout=60)
    assert cancel.returncode == 0 and b"cancelling" in cancel.stderr, cancel.stderr
    assert producer.wait(timeout=30) == 0, producer.stderr.read()
    _start_worker(url, processes, tmp_path)
    handle = _handle(st, iid)
    report = handle.wait(timeout=30)
    assert report["status"] == "cancelled" and handle.exit_code() == 5
    assert (report["rows"], report["errors"], report["rows_cancelled"], report["imported"]) == (200, 200, 200, 0)
    assert report["rows_not_queued"] == 800 and report["last_row_queued"] == 201 and "after row 201" in report["resume"]
    errors = list(st.imports.problems(iid, "errors"))
    assert len(errors) == 200 and {e["codes"][0] for e in errors} == {"cancelled"}
    assert st.r.zcard("bf:producing") == 0
    again = subprocess.run([BACKFILL, "cancel", iid], env=_env(url), capture_output=True, timeout=60)
    assert again.returncode == 0 and b"already ended" in again.stderr


def test_a_killed_producer_is_interrupted_by_the_sweeper_and_its_queued_rows_imported(own_redis, tmp_path):
    url, st, processes = own_redis
    producer = _backfill(url, "import", str(_file(tmp_path, 1000)), "--create-people")
    iid = _queued_four(st)
    producer.send_signal(signal.SIGKILL)  # as the out-of-memory killer would
    producer.wait()
    _start_worker(url, processes, tmp_path)
    assert _sweep(url)["interrupted"] == 1
    handle = _handle(st, iid)
    report = handle.wait(timeout=30)
    assert report["status"] == "interrupted" and handle.exit_code() == 5
    assert (report["imported"], report["rows"], report["rows_not_queued"], report["last_row_queued"]) == (200, 200, 800, 201)


def test_ctrl_c_of_the_producer_ends_the_import_at_once(own_redis, tmp_path):
    url, st, processes = own_redis
    producer = _backfill(url, "import", str(_file(tmp_path, 1000)), "--create-people")
    iid = _queued_four(st)
    producer.send_signal(signal.SIGINT)
    producer.wait(timeout=20)
    assert b"Traceback" not in producer.stderr.read()
    handle = _handle(st, iid)
    assert handle.state()["stop"] == "interrupted" and st.r.zcard("bf:producing") == 0
    _start_worker(url, processes, tmp_path)
    assert handle.wait(timeout=30)["status"] == "interrupted"


def test_a_total_lost_with_redis_after_every_chunk_was_queued_completes_normally(own_redis, tmp_path):
    """Redis lost the last second (the total) after the producer finished: nothing was missing."""
    url, st, processes = own_redis
    _start_worker(url, processes, tmp_path)
    done = subprocess.run([BACKFILL, "import", str(_file(tmp_path, 120)), "--create-people", "--wait"],
                          env=_env(url), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    iid = st.imports.recent(1)[0]
    # As if the report, the total and the producer's last word had never been written:
    st.r.hdel(f"bf:imp:{iid}", "chunks_total", "report")
    st.r.delete(f"bf:imp:{iid}:finalized")
    st.r.zadd("bf:producing", {iid: 1})
    assert _sweep(url)["interrupted"] == 1
    report = _handle(st, iid).wait(timeout=30)
    assert report["status"] == "completed" and report["rows_not_queued"] == 0 and report["imported"] == 120


def test_a_chunk_over_its_time_limit_is_stopped_and_its_rows_reported(own_redis, tmp_path):
    """Workers run a prefork pool (even of one process) so that Celery enforces the chunk time limits."""
    from producers.demo import start_workers

    url, st, processes = own_redis
    slow = {"BACKFILL_CHUNK_ROWS": "50", "BACKFILL_CHUNK_SOFT_TIME_LIMIT_S": "1", "BACKFILL_CHUNK_TIME_LIMIT_S": "2",
            "BACKFILL_PEOPLE_APPLY_BUDGET_S": "0.5",
            "CHAOS_SLOW_MS": "5000", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    processes += start_workers(url, 1, beat=False, log_dir=tmp_path, extra_env=slow, include=("tests.chaos.faults",))
    log = tmp_path / "worker0.log"
    _wait_until(lambda: log.exists() and " ready." in log.read_text(), timeout=60)
    started = time.monotonic()
    done = subprocess.run([BACKFILL, "import", str(_file(tmp_path, 50)), "--create-people", "--wait", "--json"],
                          env=_env(url), capture_output=True, timeout=60)
    assert done.returncode == 4, done.stderr
    import orjson

    report = orjson.loads(done.stdout)
    assert report["status"] == "partially_failed" and report["errors"] == 50 and time.monotonic() - started < 4.5
    [message] = {p["problems"][0] for p in st.imports.problems(report["import_id"], "errors")}
    assert "ran over its time limit" in message


def test_workers_need_a_redis_url_or_embedded(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BACKFILL_EMBEDDED")}
    env["BACKFILL_HOME"] = str(tmp_path / "home")
    done = subprocess.run([BACKFILL, "worker", "--no-beat"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 1 and b"REDIS_URL is not set" in done.stderr and b"Traceback" not in done.stderr
    celery = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "worker"], env=env,
                            capture_output=True, timeout=60)
    assert celery.returncode != 0 and b"REDIS_URL is not set" in celery.stderr + celery.stdout
    assert not (tmp_path / "home" / "redis.sock").exists()  # no private server was started
