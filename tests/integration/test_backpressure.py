"""Backpressure, the embedded Redis and the webhook, each against real processes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import redis

from worker import keys

from .helpers import wait_until, write


def test_producer_pauses_while_too_many_chunks_wait(tmp_path):
    """No worker: the producer queues max_inflight chunks and waits; a worker arrives, all goes through."""
    from producers.demo import start_workers, stop_workers
    from worker.store.embedded import start_private

    server, url = start_private(tmp_path / "redis")
    env = {**os.environ, "REDIS_URL": url, "BACKFILL_CHUNK_ROWS": "10", "BACKFILL_MAX_INFLIGHT_CHUNKS": "3",
           "BACKFILL_HOME": str(tmp_path / "home")}
    lines = ["email,event_name"] + [f"p{i}@example.com,x" for i in range(200)]  # 20 chunks
    path = write(tmp_path, "big.csv", "\n".join(lines) + "\n")
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent))
    producer = subprocess.Popen([exe, "import", str(path), "--create-people", "--wait", "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    client = redis.Redis.from_url(url)
    workers = []
    try:
        def queued() -> bytes | None:
            ids = client.zrange(keys.IMPORTS_INDEX, 0, -1)
            return ids[0] if ids and client.hget(keys.import_hash(ids[0].decode()), "chunks_queued") == b"3" else None

        iid = wait_until(queued, 30, "the producer queueing its first 3 chunks").decode()
        # it waits for room, beating: a beat after the third chunk, and still no fourth
        beat = client.zscore(keys.PRODUCING, iid)
        wait_until(lambda: client.zscore(keys.PRODUCING, iid) != beat, 30, "the waiting producer's heartbeat")
        assert producer.poll() is None  # still waiting for room
        assert [k.decode() for k in client.zrange(keys.IMPORTS_INDEX, 0, -1)] == [iid]
        assert client.hget(keys.import_hash(iid), "chunks_queued") == b"3"
        assert client.llen(keys.QUEUE_IMPORTS) == 3
        assert len(list(client.scan_iter(match=keys.import_chunk(iid, 0)[:-1] + "*"))) == 3
        workers = start_workers(url, 1, beat=False, log_dir=tmp_path, extra_env=env)
        out, err = producer.communicate(timeout=60)
        assert producer.returncode == 0, err
        report = orjson.loads(out)
        assert report["imported"] == 200 and report["chunks"] == 20
        assert not list(client.scan_iter(match=keys.import_chunk(iid, 0)[:-1] + "*"))  # commits deleted rows
    finally:
        producer.kill()
        stop_workers(workers)
        server.kill()


def test_embedded_redis_starts_once_and_is_reused(tmp_path):
    import pytest

    from worker.errors import ConfigError
    from worker.settings import Settings
    from worker.store.embedded import ensure_redis, stop_embedded

    with pytest.raises(ConfigError, match="REDIS_URL is not set"):
        ensure_redis(Settings(home=tmp_path / "h"))  # only when asked for
    settings = Settings(home=tmp_path / "h", embedded=True)
    url = ensure_redis(settings)
    try:
        assert url == f"unix://{tmp_path / 'h' / 'redis.sock'}"
        client = redis.Redis.from_url(url)
        client.set("probe", "1")
        assert ensure_redis(settings) == url and client.get("probe") == b"1"  # reused, not restarted
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        client.set("more", "x")
        client.bgrewriteaof()
        home = tmp_path / "h"
        assert home.stat().st_mode & 0o777 == 0o700
        files = [p for p in home.rglob("*") if p.is_file()]
        assert files and all(p.stat().st_mode & 0o077 == 0 for p in files), [(p, oct(p.stat().st_mode)) for p in files]
    finally:
        assert stop_embedded(settings)
    assert not stop_embedded(settings)


def test_redis_server_setting_chooses_the_program_the_servers_run(tmp_path, monkeypatch):
    import pytest

    from worker.errors import ConfigError
    from worker.settings import Settings
    from worker.store.embedded import ensure_redis, server_binary, start_private, stop_embedded

    # a program of the user's own: it says it ran, then runs the usual server with the same arguments
    ran = tmp_path / "ran"
    program = tmp_path / "my-redis-server"
    program.write_text(f"#!/bin/sh\necho \"$@\" >> {ran}\nexec {server_binary()} \"$@\"\n")
    program.chmod(0o755)
    settings = Settings(home=tmp_path / "h", embedded=True, redis_server=str(program))
    url = ensure_redis(settings)
    try:
        assert redis.Redis.from_url(url).ping()
        assert "--unixsocket" in ran.read_text()  # the embedded server is the program named
    finally:
        assert stop_embedded(settings)
    monkeypatch.setenv("BACKFILL_REDIS_SERVER", str(program))
    server, url = start_private(tmp_path / "private")
    try:
        assert redis.Redis.from_url(url).ping()
        assert ran.read_text().count("--bind 127.0.0.1") == 1  # and so are the tests' and benchmarks' own
    finally:
        server.kill()
        server.wait()
    with pytest.raises(ConfigError, match="BACKFILL_REDIS_SERVER='no-such-redis-server': no such program"):
        ensure_redis(Settings(home=tmp_path / "h2", embedded=True, redis_server="no-such-redis-server"))
