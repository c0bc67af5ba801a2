"""Every finished import notifies: a log line always, and a signed, retried webhook to a real HTTP server."""
from __future__ import annotations

import time

from worker.ops.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

from .conftest import WEBHOOK_SECRET
from .helpers import run_import, wait_until, write


def _received(hook, import_id: str) -> list[dict]:
    return [r for r in hook.received if r["report"]["import_id"] == import_id]


def _deliveries(hook, import_id: str, count: int, timeout: float = 20) -> list[dict]:
    return wait_until(lambda: got if len(got := _received(hook, import_id)) >= count else None, timeout,
                      f"{count} webhook requests for {import_id}")


def _notified(store, import_id: str) -> None:
    """Wait until the import's notification is no longer pending work: nothing will send it again."""
    from worker import keys

    member = keys.pending_member(import_id, keys.NOTIFY)
    wait_until(lambda: store.r.zscore(keys.PENDING, member) is None, 10, f"{import_id}'s notification done")


def test_webhook_posts_the_signed_report_once(store, workers, webhook, tmp_path):
    path = write(tmp_path, "orders.csv", "email,event_name\nada@example.com,Ordered\nbad,Ordered\n")
    report = run_import(path, create_people=True)
    [delivery] = _deliveries(webhook, report["import_id"], 1)
    body, headers = delivery["body"], delivery["headers"]
    assert verify(WEBHOOK_SECRET, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER])
    assert not verify("another secret", body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER])
    assert not verify(WEBHOOK_SECRET, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER],
                      now=time.time() + 600)  # replayed ten minutes later
    assert not verify(WEBHOOK_SECRET, body, None, None) and not verify(WEBHOOK_SECRET, body, "sha256=é", "1")
    assert headers["X-Backfill-Event"] == "import.finished" and headers["X-Backfill-Delivery"] == report["import_id"]
    sent = delivery["report"]
    assert sent["event"] == "import.finished" and sent["status"] == "completed_with_errors"
    assert (sent["imported"], sent["errors"], sent["rows"]) == (1, 1, 2)
    _notified(store, report["import_id"])
    assert len(_received(webhook, report["import_id"])) == 1


def test_failing_endpoint_is_retried_with_backoff_without_holding_the_report(store, workers, webhook, tmp_path):
    path = write(tmp_path, "flaky-orders.csv", "email,event_name\nada@example.com,Ordered\n")
    started = time.monotonic()
    report = run_import(path, create_people=True)
    assert time.monotonic() - started < 5  # the report did not wait for the endpoint
    got = _deliveries(webhook, report["import_id"], 3)
    assert [r["report"]["import_id"] for r in got] == [report["import_id"]] * 3  # 503, 503, then 200
    assert all(r["body"] == got[0]["body"] for r in got)  # the same signed body each time


def test_a_refused_file_notifies_too(store, workers, webhook, tmp_path):
    path = write(tmp_path, "book.csv", "")
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    report = run_import(path)
    assert report["status"] == "failed"
    [delivery] = _deliveries(webhook, report["import_id"], 1)
    assert delivery["report"]["failure_code"] == "not_csv" and "not a CSV file" in delivery["report"]["failure"]


def test_the_notification_is_pending_work_until_done(store, workers, webhook, tmp_path):
    """The worker that wrote the report died before queueing the notification: the sweeper sends it."""
    from worker import keys
    from worker.ops import sweeper
    from worker.tasks import notify_finished

    store.r.hset("bf:imp:lost-notify", mapping={"status": "running", "source": "x.csv", "rows": 1, "imported": 1})
    assert store.imports.finalize("lost-notify", "completed", {"import_id": "lost-notify", "status": "completed"}, 60)
    member = keys.pending_member("lost-notify", keys.NOTIFY)
    assert store.r.zscore(keys.PENDING, member) is not None
    store.r.zadd(keys.PENDING, {member: 1})  # quiet since long ago
    swept = sweeper.sweep(store, 1, send_chunk=None, send_report=None, fail_chunk=None,
                          send_notify=lambda i: notify_finished.apply_async((i,)), producer_timeout_s=300)
    assert swept.notifications == 1
    [delivery] = _deliveries(webhook, "lost-notify", 1)
    assert delivery["report"]["status"] == "completed"
    _notified(store, "lost-notify")  # done: no longer pending


def test_redirects_are_failures_and_slow_endpoints_are_cut_off():
    import http.server
    import threading

    from worker.ops import notify

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/slow":
                time.sleep(3)
            self.send_response(302 if self.path == "/moved" else 200)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert notify.post(base + "/ok", {"import_id": "x"}, "s") == 200
        for path, words in (("/moved", "302 (a redirect"), ("/slow", "no answer within 1 s")):
            started = time.monotonic()
            try:
                notify.post(base + path, {"import_id": "x"}, "s", timeout_s=1)
            except notify.WebhookFailed as exc:
                assert words in str(exc) and time.monotonic() - started < 2.9
            else:
                raise AssertionError(f"{path} counted as delivered")
    finally:
        server.shutdown()


def test_a_hanging_endpoint_holds_no_pool_process(tmp_path):
    """One worker with one pool process, a webhook that never answers: each import's notification waits
    for the endpoint in a thread of its own, so the next import's chunks do not wait behind it."""
    import http.server
    import os
    import shutil
    import subprocess
    import sys
    import threading
    from pathlib import Path

    import orjson

    from producers.demo import start_workers, stop_workers
    from worker.store.embedded import start_private

    posted: list[str] = []

    class Hang(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            posted.append(self.headers["X-Backfill-Delivery"])
            time.sleep(30)

        def log_message(self, *args):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    hook.daemon_threads = True
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    server, url = start_private(tmp_path / "redis")
    env = {**os.environ, "REDIS_URL": url, "BACKFILL_HOME": str(tmp_path / "home"),
           "BACKFILL_WEBHOOK_URL": f"http://127.0.0.1:{hook.server_port}/hang", "BACKFILL_WEBHOOK_BACKOFF_S": "0.2"}
    workers = start_workers(url, 1, beat=False, log_dir=tmp_path, extra_env=env)
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent))
    try:
        seconds = []
        for n in range(3):
            path = tmp_path / f"orders{n}.csv"
            path.write_text("email,event_name\n" + "".join(f"p{i}@example.com,Ordered\n" for i in range(20)))
            started = time.monotonic()
            done = subprocess.run([exe, "import", str(path), "--create-people", "--wait", "--json"], env=env,
                                  capture_output=True, timeout=120)
            seconds.append(time.monotonic() - started)
            assert done.returncode == 0 and orjson.loads(done.stdout)["imported"] == 20, done.stderr
        # (a notification held the pool process for the request's 10 s bound, and again on each retry)
        assert max(seconds[1:]) < 8, seconds
        assert (tmp_path / "worker0.log").read_text().count('"import finished"') == 3
        wait_until(lambda: len(set(posted)) == 3, 5, "every notification sent (none answered)")
    finally:
        stop_workers(workers)
        server.kill()
        hook.shutdown()
