"""What operators watch: the Prometheus endpoint, `backfill top` and `backfill status --watch`."""
from __future__ import annotations

import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from worker.store.embedded import free_port

from .helpers import run_import, write


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_rows_imports_chunks_queues_and_triggers(store, workers, backfill, tmp_path):
    from worker.ops.metrics import serve

    port = free_port()
    server = serve(store.r, port, "127.0.0.1")
    try:
        assert backfill("campaigns", "add", "later", "--event", "Signed up", "--delay", "1h").returncode == 0
        lines = [f"p{n}@example.com,Signed up,,ev{n}" for n in range(120)] + ["bad,Signed up,,x1", "p1@example.com,,,x2"]
        path = write(tmp_path, "signups.csv", "email,event_name,time,event_id\n" + "\n".join(lines + lines[:10]) + "\n")
        report = run_import(path, create_people=True, trigger=True)
        got = _scrape(port)
    finally:
        server.shutdown()
    assert (report["imported"], report["duplicates"], report["errors"]) == (120, 10, 2)
    assert got[("backfill_rows_total", (("outcome", "imported"),))] == 120
    assert got[("backfill_rows_total", (("outcome", "duplicate"),))] == 10
    assert got[("backfill_rows_total", (("outcome", "error"),))] == 2
    assert got[("backfill_imports_total", (("status", "completed_with_errors"),))] == 1
    assert got[("backfill_imports_running", ())] == 0
    chunks = report["chunks"]
    assert got[("backfill_chunk_duration_seconds_count", ())] == chunks
    assert got[("backfill_chunk_duration_seconds_bucket", (("le", "+Inf"),))] == chunks
    assert got[("backfill_chunk_duration_seconds_sum", ())] > 0
    assert ("backfill_queue_length", (("queue", "imports"),)) in got  # (drained by now: its value varies)
    assert got[("backfill_pending_chunks", ())] == 0  # everything committed, the report written
    assert got[("backfill_triggers_scheduled", ())] == 120 and got[("backfill_triggers_due", ())] == 0


def test_status_watch_follows_an_import_to_its_end(store, workers, backfill, tmp_path):
    lines = "".join(f"p{n}@example.com,Ordered,,o{n}\n" for n in range(20_000))
    path = write(tmp_path, "orders.csv", "email,event_name,time,event_id\n" + lines + "oops,Ordered,,o-bad\n")
    # The producer only returns once its last chunk is queued: watch while it still queues.
    producer = threading.Thread(target=backfill, args=("import", str(path), "--create-people"))
    producer.start()
    deadline = time.monotonic() + 30
    while not store.imports.recent(1) and time.monotonic() < deadline:
        time.sleep(0.02)
    [import_id] = store.imports.recent(1)
    watched = backfill("status", import_id, "--watch", "--interval", "0.1", timeout=120)
    producer.join()
    frames = watched.stdout.decode().splitlines()
    assert watched.returncode == 4, watched.stderr  # finished with a row error
    assert len(frames) >= 2 and all(import_id in f for f in frames)
    assert "completed_with_errors" in frames[-1] and "20001/20001" in frames[-1]


def test_top_shows_queues_and_what_is_in_flight(store, workers, backfill):
    from producers.cli import watch

    shown = backfill("top", "--once")
    assert shown.returncode == 0 and "queues  imports" in shown.stdout.decode()
    state = {"status": "running", "rows": "500", "rows_expected": "2000", "errors": "3", "source": "big.csv",
             "first_commit_ms": "1000", "created_ms": "900"}
    p = watch.progress("abc", state, now_ms=6000)  # 500 rows in 5 s
    assert (p["rows_per_second"], p["eta_s"], p["errors"]) == (100, 15, 3)
    frame = watch.render_top([p], {"imports": 7, "reports": 0}, 12, "now")
    assert "imports 7" in frame and "pending chunks 12" in frame
    assert "500/2000" in frame and " 25.0%" in frame and "15 s" in frame and "big.csv" in frame


def test_an_unreachable_redis_is_one_line_and_metrics_say_backfill_up_0(tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import redis

    from worker.ops.metrics import serve

    dead = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent))
    for args in (["status"], ["import", str(write(tmp_path, "a.csv", "email,event_name\na@b.co,x\n"))]):
        done = subprocess.run([exe, *args], env={**os.environ, "REDIS_URL": dead}, capture_output=True, timeout=60)
        assert done.returncode == 1 and b"Traceback" not in done.stderr, done.stderr
        assert done.stderr.decode().startswith(f"Error: Redis did not answer at {dead}"), done.stderr
    port = free_port()
    server = serve(redis.Redis.from_url(dead, socket_connect_timeout=0.5), port, "127.0.0.1")
    try:
        assert _scrape(port) == {("backfill_up", ()): 0.0}
    finally:
        server.shutdown()


def test_status_skips_and_trims_imports_that_expired(store, workers, backfill, tmp_path):
    from worker import keys

    report = run_import(write(tmp_path, "a.csv", "email,event_name\na@b.co,x\n"), create_people=True)
    store.r.zadd(keys.IMPORTS_INDEX, {"gone-long-ago": 10**12 * 2})  # newer than any, but its hash expired
    shown = backfill("status")
    assert shown.returncode == 0 and report["import_id"] in shown.stdout.decode(), shown.stderr
    assert store.r.zscore(keys.IMPORTS_INDEX, "gone-long-ago") is None
