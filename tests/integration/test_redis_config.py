"""A Redis that evicts keys is refused by every process that writes; a Redis that lost its data is said in
one line, and nothing reports an import it no longer knows as running. Each test runs its own redis-server."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from worker import keys
from worker.store import connect
from worker.store.embedded import free_port, start_private

ROOT = Path(__file__).resolve().parents[2]
EXE = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"
EVENTS = "email,event_name,timestamp\nann@example.com,Ordered,2024-01-02T03:04:05Z\n"


@pytest.fixture
def private(tmp_path):
    """A redis-server of this test's own, its URL, and the environment of a process using it."""
    server, url = start_private(tmp_path / "redis")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}, "REDIS_URL": url,
           "BACKFILL_HOME": str(tmp_path / "home"), "DATABASE_URL": f"sqlite:///{tmp_path / 'results.db'}"}
    yield url, env
    server.kill()
    server.wait()


def _run(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_every_process_that_writes_refuses_a_redis_that_evicts_in_one_line(private, tmp_path):
    url, env = private
    client = connect(url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    (tmp_path / "events.csv").write_text(EVENTS)
    beat = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "beat", "-s", str(tmp_path / "beat")],
                          env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    worker = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "solo"],
                            env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    runs = {"import": _run(env, "import", str(tmp_path / "events.csv")), "sink": _run(env, "sink"),
            "serve": _run(env, "serve", "--port", str(free_port())),
            "worker": worker, "beat": beat}
    for name, done in runs.items():
        said = done.stdout + done.stderr
        lines = [line for line in said.splitlines() if "maxmemory-policy is allkeys-lru" in line]
        assert done.returncode != 0 and len(lines) == 1 and "Traceback" not in said, (name, said[-2000:])
        assert "CONFIG SET maxmemory-policy noeviction" in lines[0], name
    assert runs["worker"].returncode == 78 == runs["beat"].returncode
    assert not list(client.scan_iter(match=keys.import_hash("*")))  # nothing recorded


def test_the_metrics_endpoint_serves_the_policy_and_the_losses(private):
    from worker.ops.metrics import RedisCollector
    from worker.store.guard import Guard

    url, _ = private
    client = connect(url)
    guard = Guard(client, every_s=0.01)

    def samples() -> dict:
        return {(s.name, tuple(s.labels.values())): s.value for family in RedisCollector(client, guard).collect()
                for s in family.samples if "redis" in s.name}

    assert samples() == {("backfill_redis_noeviction", ("noeviction",)): 1, ("backfill_redis_data_lost_total", ()): 0}
    client.flushall()  # Redis loses its data: the endpoint's own guard finds it at the next scrape
    client.config_set("maxmemory-policy", "volatile-lru")
    assert samples() == {("backfill_redis_noeviction", ("volatile-lru",)): 0, ("backfill_redis_data_lost_total", ()): 1}
    client.config_set("maxmemory-policy", "noeviction")
    client.flushall()
    assert samples()[("backfill_redis_data_lost_total", ())] == 2  # carried from epoch to epoch


def test_an_import_redis_lost_is_unknown_in_one_line_never_running(private, tmp_path):
    url, env = private
    client = connect(url)
    (tmp_path / "events.csv").write_text(EVENTS)
    queued = _run(env, "import", str(tmp_path / "events.csv"))
    assert queued.returncode == 0, queued.stderr
    import_id = queued.stdout.split()[-1]
    time.sleep(0.01)
    client.flushall()  # Redis restarted without its data
    client.hset(keys.import_hash(import_id), "events_stored", 5)  # a stray counter written after the loss
    for command in (("report", import_id), ("status", import_id)):
        done = _run(env, *command)
        lines = [line for line in done.stderr.splitlines() if "unknown to Redis: lost or expired" in line]
        assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, (command, done.stderr)
        assert "still running" not in done.stdout + done.stderr
        # its id is older than the data Redis holds now, and younger than its retention: it was lost
        assert "after this import was made: Redis lost it" in lines[0]


def test_http_get_of_an_import_redis_does_not_know_is_404_saying_so(redis_url, store):
    from fastapi.testclient import TestClient

    from producers.api import default_context
    from producers.web.app import create_app

    key = store.apikeys.create("test", "read")[1]
    store.r.hset(keys.import_hash("1a2450f3402ae5adba1bc"), "events_stored", 5)  # a stray counter: no import
    with TestClient(create_app(default_context())) as http:
        answer = http.get("/v1/imports/1a2450f3402ae5adba1bc", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"
    assert "unknown to Redis: lost or expired" in answer.json()["error"]["message"]


def test_a_sink_whose_group_is_lost_creates_it_again_and_goes_on(private, tmp_path):
    from worker.settings import Settings
    from worker.sink.drain import run
    from worker.sink.results import open_results
    from worker.store.guard import Guard
    from worker.store.outbox import Outbox

    url, _ = private
    client = connect(url)
    results = open_results(Settings(database_url=f"sqlite:///{tmp_path / 'results.db'}"), create=True)
    results.upgrade()
    stop = threading.Event()
    sink = threading.Thread(target=run, args=(Outbox(client, "s1"), results), daemon=True, kwargs=dict(
        batch=5, block_ms=100, claim_idle_ms=1000, stop=stop.is_set, guard=Guard(client, every_s=0.2)))
    sink.start()
    try:
        deadline = time.monotonic() + 10
        for _ in range(2):  # lost twice: each time the group is back within a few turns
            while not any(g["name"] == b"sink" for g in _groups(client)):
                assert time.monotonic() < deadline, "the sink did not create its group again"
                time.sleep(0.05)
            client.flushall()
        while not any(g["name"] == b"sink" for g in _groups(client)):
            assert time.monotonic() < deadline, "the sink did not create its group again"
            time.sleep(0.05)
    finally:
        stop.set()
        sink.join(timeout=10)
        results.close()


def _groups(client) -> list[dict]:
    try:
        return client.xinfo_groups(keys.OUTBOX)
    except Exception:  # noqa: BLE001 - no stream yet
        return []
