"""A private redis-server on a free port and real `celery worker` processes, per session.

Each test starts from an empty backfill keyspace (``bf:*`` deleted; kombu's own
binding keys are kept, or published messages would have nowhere to go).
"""
from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    from worker.store.embedded import start_private

    process, url = start_private(tmp_path_factory.mktemp("redis"))
    os.environ["REDIS_URL"] = url
    os.environ["BACKFILL_HOME"] = str(tmp_path_factory.mktemp("home"))
    # Small chunks so a few hundred rows already span several chunks and workers.
    os.environ["BACKFILL_CHUNK_ROWS"] = "50"
    os.environ["BACKFILL_LOG_FORMAT"] = "json"
    from worker.settings import reset_settings

    reset_settings()
    yield url
    process.kill()
    process.wait()


@pytest.fixture(scope="session")
def worker_logs(tmp_path_factory):
    """Where the test workers write their (JSON) logs."""
    return tmp_path_factory.mktemp("worker-logs")


class Hook(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: records every request; answers 503 to the first two of an import from a
    file whose name holds "flaky", 200 otherwise."""

    received: list[dict] = []
    failures: dict[str, int] = {}

    def do_POST(self):
        payload = self.rfile.read(int(self.headers["Content-Length"]))
        report = orjson.loads(payload)
        self.received.append({"headers": dict(self.headers), "body": payload, "report": report})
        seen = self.failures.setdefault(report["import_id"], 0)
        if "flaky" in str(report.get("source")) and seen < 2:
            self.failures[report["import_id"]] = seen + 1
            self.send_response(503)
        else:
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


WEBHOOK_SECRET = "test-secret"


@pytest.fixture(scope="session")
def webhook(redis_url):
    """A real HTTP server on loopback that every finished import of the session notifies."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    os.environ["BACKFILL_WEBHOOK_URL"] = f"http://127.0.0.1:{server.server_port}/hooks/backfill"
    os.environ["BACKFILL_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    os.environ["BACKFILL_WEBHOOK_BACKOFF_S"] = "0.2"
    from worker.settings import reset_settings

    reset_settings()
    yield Hook
    server.shutdown()


@pytest.fixture(scope="session")
def workers(redis_url, worker_logs, webhook):
    """Two real worker processes (each a prefork pool of one process, as `backfill worker` runs), the first
    also running beat."""
    from producers.demo import start_workers, stop_workers, wait_ready
    from worker.app import app

    logs = worker_logs
    processes = start_workers(redis_url, 2, log_dir=logs, extra_env={"BACKFILL_TRIGGER_TICK_S": "0.5"})
    try:
        wait_ready(app, 2)
    except BaseException:
        stop_workers(processes)
        for log in logs.glob("*.log"):
            sys.stderr.write(log.read_text())
        raise
    yield processes
    stop_workers(processes)
    if any(p.returncode not in (0, -15) for p in processes):
        for log in logs.glob("*.log"):
            sys.stderr.write(log.read_text()[-5000:])


@pytest.fixture
def store(redis_url):
    from producers.api import default_context

    from .helpers import clear_keys

    st = default_context().store
    clear_keys(st.r)
    return st


@pytest.fixture
def backfill(redis_url, workers, store):
    """Run the real CLI as a user would, against the test Redis and workers."""
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"

    def run(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], input=input, capture_output=True, timeout=timeout,
                              env={**os.environ}, cwd=ROOT)

    return run


@pytest.fixture(scope="session")
def postgres_url():
    """A private PostgreSQL for the session (see tests/integration/postgres.py)."""
    from .postgres import start_postgres

    url, stop = start_postgres()
    yield url
    stop()


@pytest.fixture
def postgres(postgres_url):
    """An empty results database on the session's PostgreSQL, upgraded to the current schema."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("DROP TABLE IF EXISTS events, people, deliveries, imports, identifiers, event_keys, schema_version, "
                      "store_meta")
    from worker.sink.postgres import PostgresResults

    results = PostgresResults(postgres_url)
    results.upgrade()
    yield results
    results.close()
