"""A Redis that cannot save to its disk (MISCONF) refuses writes for a while: like a full one, a transient failure.

The refusal is real: a private redis-server whose data directory is removed under it, with an RDB
save point and ``stop-writes-on-bgsave-error yes`` (its default), fails its BGSAVE and from then on
answers every write with ``MISCONF``, until a snapshot succeeds again (its directory set to one that
exists, and saved).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import redis

from worker import keys
from worker.store.client import connect
from worker.store.embedded import start_private

ROOT = Path(__file__).resolve().parents[2]


def _refuse_writes(client: redis.Redis, data: Path) -> None:
    """Make the server's next snapshot fail for real (its directory is gone), so it refuses writes."""
    shutil.rmtree(data)
    client.config_set("save", "3600 1")
    client.bgsave()
    _wait(lambda: client.info("persistence")["rdb_last_bgsave_status"] == "err", "the snapshot to fail")


def _accept_writes(client: redis.Redis, data: Path) -> None:
    """The disk is back: the server saves to a directory that exists, and takes writes again."""
    data.mkdir(parents=True, exist_ok=True)
    client.config_set("dir", str(data))
    client.bgsave()
    _wait(lambda: client.info("persistence")["rdb_last_bgsave_status"] == "ok", "the snapshot to succeed")


def _wait(done, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path):
    process, url = start_private(tmp_path / "data")
    yield url
    process.kill()
    process.wait()


def test_every_write_refused_for_a_disk_is_a_transient_failure(server, tmp_path):
    from worker.ops.retries import run_or_reject
    from worker.store.client import WritesRefused, is_transient
    from worker.store.work import Work

    client = connect(server)
    client.set("before", 1)
    _refuse_writes(client, tmp_path / "data")
    with pytest.raises(WritesRefused):
        client.set("k", 1)
    with pytest.raises(WritesRefused):  # inside a script: the error quotes it
        client.eval("redis.call('SET', KEYS[1], '1') return 1", 1, "k")
    pipe = client.pipeline()
    pipe.set("k", 1)
    pipe.incr("n")
    with pytest.raises(WritesRefused):  # inside a MULTI
        pipe.execute()
    assert client.get("before") == b"1"  # reads still work
    try:
        redis.Redis.from_url(server).set("k", 1)
    except redis.ResponseError as plain:  # (a client of redis-py's own, as the producer's retry loop sees it)
        assert is_transient(plain)
    # a chunk meeting it is retried later (raised for the task's retry), not committed as failed rows
    failed: list = []
    with pytest.raises(WritesRefused):
        run_or_reject(Work(client), "imp", 0, 5, run=lambda: client.set("k", 1), fail=lambda *a: failed.append(a))
    assert failed == []
    _accept_writes(client, tmp_path / "data2")
    assert client.set("k", 1)


def test_a_worker_waits_through_a_disk_that_refuses_writes_and_the_import_completes(server, tmp_path):
    """A real worker (and its beat) while Redis refuses writes in the middle of an import: it stays up,
    its chunks wait and are retried, and the import ends exactly as the oracle says."""
    from producers.demo import start_workers, stop_workers
    from tests.chaos.harness import events_file, oracle

    client = connect(server)
    env = {"REDIS_URL": server, "BACKFILL_HOME": str(tmp_path / "home"), "BACKFILL_LOG_FORMAT": "json",
           "BACKFILL_CHUNK_ROWS": "100", "BACKFILL_REQUEUE_AFTER_S": "5", "BACKFILL_SWEEP_EVERY_S": "1",
           "BACKFILL_VISIBILITY_TIMEOUT_S": "10", "BACKFILL_CHUNK_SOFT_TIME_LIMIT_S": "3",
           "BACKFILL_CHUNK_TIME_LIMIT_S": "4", "BACKFILL_PEOPLE_APPLY_BUDGET_S": "1", "BACKFILL_WEBHOOK_URL": "", "CHAOS_SLOW_MS": "100",
           "PYTHONPATH": str(ROOT)}
    logs = tmp_path / "logs"
    logs.mkdir()
    [worker] = start_workers(server, 1, log_dir=logs, extra_env=env, include=("tests.chaos.faults",))
    try:
        _wait(lambda: b" ready." in (logs / "worker0.log").read_bytes() or worker.poll() is not None, "the worker",
              timeout=60)
        path = events_file(tmp_path, 3000, seed=41)
        expected = oracle(path, 100)
        produced = subprocess.run([sys.executable, "-m", "tests.chaos.produce", str(path)], env={**os.environ, **env},
                                  capture_output=True, cwd=ROOT, timeout=120)
        assert produced.returncode == 0, produced.stderr.decode()[-3000:]
        import_id = produced.stdout.decode().split()[-1]
        done = lambda: int(client.hget(keys.import_hash(import_id), "chunks_done") or 0)
        _wait(lambda: done() >= 3, "three chunks to commit", timeout=60)
        _refuse_writes(client, tmp_path / "data")
        refused_at = done()
        _wait(lambda: (logs / "worker0.log").read_text().count("MISCONF") >= 2, "the worker to meet the refusal")
        time.sleep(2)
        assert done() == refused_at  # nothing was committed while Redis refused writes
        _accept_writes(client, tmp_path / "data2")
        _wait(lambda: client.hget(keys.import_hash(import_id), "report") is not None or worker.poll() is not None,
              "the report", timeout=120)
        assert worker.poll() is None, "the worker exited: " + (logs / "worker0.log").read_text()[-3000:]
        report = orjson.loads(client.hget(keys.import_hash(import_id), "report"))
        assert (report["rows"], report["imported"], report["duplicates"], report["errors"]) == (
            expected.rows, expected.imported, expected.duplicates, len(expected.error_rows))
    finally:
        stop_workers([worker])
