"""Every finished import notifies: a log line always, and a signed, retried webhook to a real HTTP server."""
from __future__ import annotations

import hmac
import time

from worker.ops.notify import SIGNATURE_HEADER, signature

from .conftest import WEBHOOK_SECRET
from .helpers import run_import, write


def _deliveries(hook, import_id: str, count: int, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [r for r in hook.received if r["report"]["import_id"] == import_id]
        if len(got) >= count:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{len(got)} webhook requests for {import_id}, wanted {count}")


def test_webhook_posts_the_signed_report_once(store, workers, webhook, tmp_path):
    path = write(tmp_path, "orders.csv", "email,event_name\nada@example.com,Ordered\nbad,Ordered\n")
    report = run_import(path, create_people=True)
    [delivery] = _deliveries(webhook, report["import_id"], 1)
    body, headers = delivery["body"], delivery["headers"]
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], signature(WEBHOOK_SECRET, body))
    assert not hmac.compare_digest(headers[SIGNATURE_HEADER], signature("another secret", body))
    assert headers["X-Backfill-Event"] == "import.finished" and headers["X-Backfill-Delivery"] == report["import_id"]
    sent = delivery["report"]
    assert sent["event"] == "import.finished" and sent["status"] == "completed_with_errors"
    assert (sent["imported"], sent["errors"], sent["rows"]) == (1, 1, 2)
    time.sleep(0.5)
    assert len([r for r in webhook.received if r["report"]["import_id"] == report["import_id"]]) == 1


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
