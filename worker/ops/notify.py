"""Telling the world an import ended: a log line always, a signed webhook when configured.

The notification is its own task, queued after the report is written and pending work
from the moment the report is (finalize.lua), so it happens at least once even when a
worker dies between the two: the sweeper sends it again. The webhook is a JSON POST of
the report. It is signed: ``X-Backfill-Timestamp: <unix seconds>`` and
``X-Backfill-Signature-256: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` with
``BACKFILL_WEBHOOK_SECRET``; a receiver checks both with :func:`verify` (a constant-time
comparison, and a timestamp within five minutes, so a captured request cannot be
replayed later). A delivery succeeds only on a 2xx answer: a redirect is a failure
(following it would send the body and its signature to another address). Each request
is bounded as a whole (:data:`REQUEST_TIMEOUT_S`) and sent in a thread of its own (:class:`Senders`),
so a hanging endpoint never holds the pool process chunks need. A failed delivery is retried with
exponential backoff, ``BACKFILL_WEBHOOK_RETRIES`` times; the same import is always the
same ``X-Backfill-Delivery``, so a receiver can ignore a repeat.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import threading
import time
import urllib.parse

import orjson

from worker import keys
from worker.errors import TransientError
from worker.logs import bind_chunk, get_logger

log = get_logger("backfill.worker")

SIGNATURE_HEADER = "X-Backfill-Signature-256"
TIMESTAMP_HEADER = "X-Backfill-Timestamp"
#: A webhook request (connect, send, answer) takes at most this long, whatever the endpoint does.
REQUEST_TIMEOUT_S = 10.0
#: How old a signed timestamp :func:`verify` accepts.
TOLERANCE_S = 300
#: The report fields of the one log line every finished import gets.
LOG_FIELDS = ("status", "rows", "imported", "duplicates", "errors", "warnings", "seconds", "rows_per_second",
              "failure")


#: Webhook requests one process sends at once; another notification waits its turn in the queue.
SENDERS = 4
#: How long a notification that found every sender busy waits before it is tried again.
BUSY_RETRY_S = 5.0


class Senders:
    """Webhook requests sent in threads of their own, at most ``limit`` at once: the task that asks for
    one returns at once, so an endpoint that hangs holds a thread for its bound, never the pool process
    that chunks need."""

    def __init__(self, limit: int = SENDERS) -> None:
        self._slots = threading.BoundedSemaphore(limit)

    def submit(self, job) -> bool:
        """Run ``job()`` in a thread of its own; False (not run) while every sender is busy."""
        if not self._slots.acquire(blocking=False):
            return False

        def run() -> None:
            try:
                job()
            finally:
                self._slots.release()

        threading.Thread(target=run, name="backfill-webhook", daemon=True).start()
        return True


class WebhookFailed(TransientError):
    """The endpoint did not take the notification (worth retrying)."""


def log_fields(report: dict) -> dict:
    """The fields of the ``import finished`` log line."""
    return {k: report[k] for k in LOG_FIELDS if report.get(k) is not None}


def body(report: dict) -> bytes:
    """The webhook's JSON: the report, with the event's name."""
    return orjson.dumps({"event": "import.finished", **report})


def signature(secret: str, payload: bytes, timestamp: int) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``payload`` sent at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + payload
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(secret: str, payload: bytes, signature_header: str | None, timestamp_header: str | None,
           *, now: float | None = None) -> bool:
    """True when a request carries a valid signature made within :data:`TOLERANCE_S` (a receiver's check).

    Missing, malformed or non-ASCII headers are simply invalid.
    """
    if not signature_header or not timestamp_header or not timestamp_header.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp_header)) > TOLERANCE_S:
        return False
    expected = signature(secret, payload, int(timestamp_header)).encode()
    return hmac.compare_digest(expected, signature_header.encode("utf-8", "replace"))


def backoff_s(retries: int, base_s: float, cap_s: float = 600.0) -> float:
    """Seconds before retry number ``retries + 1``: base, 2 x base, 4 x base... up to ``cap_s``."""
    return min(base_s * 2 ** retries, cap_s)


def post(url: str, report: dict, secret: str, timeout_s: float = REQUEST_TIMEOUT_S) -> int:
    """POST the report to ``url``; its 2xx HTTP status, or WebhookFailed (any other answer, a redirect
    included, no answer, or no answer within ``timeout_s`` for the whole request)."""
    payload = body(report)
    headers = {"Content-Type": "application/json", "User-Agent": "backfill",
               "X-Backfill-Event": "import.finished", "X-Backfill-Delivery": str(report.get("import_id", ""))}
    if secret:
        stamp = int(time.time())
        headers[TIMESTAMP_HEADER] = str(stamp)
        headers[SIGNATURE_HEADER] = signature(secret, payload, stamp)
    target = urllib.parse.urlsplit(url)
    if target.scheme not in ("http", "https") or not target.hostname:
        raise WebhookFailed(f"{url}: not an http(s) URL")
    answer: list = []

    def request() -> None:
        kind = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        connection = kind(target.hostname or "", target.port, timeout=timeout_s)  # (checked above)
        try:
            path = (target.path or "/") + (f"?{target.query}" if target.query else "")
            connection.request("POST", path, body=payload, headers=headers)
            answer.append(connection.getresponse().status)
        except (OSError, http.client.HTTPException) as exc:
            answer.append(exc)
        finally:
            connection.close()

    # The socket timeout bounds each step; the thread bounds the whole (an endpoint that answers a
    # byte every few seconds would otherwise hold the task for ever).
    worker = threading.Thread(target=request, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not answer or isinstance(answer[0], TimeoutError):
        raise WebhookFailed(f"{url}: no answer within {timeout_s:.0f} s")
    status = answer[0]
    if isinstance(status, Exception):
        raise WebhookFailed(f"{url}: {status}")
    if not 200 <= status < 300:
        kind = "a redirect, which is not followed" if 300 <= status < 400 else "not 2xx"
        raise WebhookFailed(f"{url} answered {status} ({kind})")
    return status


def deliver(work, import_id: str, report: dict, settings, tries: int, again) -> None:
    """Send an import's webhook (``tries``: deliveries already failed) and settle its pending work: done,
    given up after ``BACKFILL_WEBHOOK_RETRIES``, or ``again(tries, delay_s)`` to be sent again after its
    backoff. ``work``: the store's pending work (worker.store.work.Work). Redis or the broker away: it
    stays pending, and the sweeper sends it again."""
    with bind_chunk(import_id):
        try:
            try:
                status = post(settings.webhook_url, report, settings.webhook_secret)
            except WebhookFailed as exc:
                if tries < settings.webhook_retries:
                    delay = backoff_s(tries, settings.webhook_backoff_s)
                    log.warning("webhook failed, will retry", url=settings.webhook_url, error=str(exc), in_s=delay)
                    work.touch(import_id, keys.NOTIFY)  # alive: the sweeper leaves it to the retry
                    again(tries + 1, delay)
                    return
                log.error("webhook gave up", url=settings.webhook_url, error=str(exc), tries=tries + 1)
            else:
                log.info("webhook delivered", url=settings.webhook_url, status=status, tries=tries + 1)
            work.drop(import_id, keys.NOTIFY)
        except Exception as exc:  # noqa: BLE001 - Redis or the broker away: still pending
            log.warning("webhook delivery not settled; the sweeper sends it again", error=str(exc))
