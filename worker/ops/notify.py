"""Telling the world an import ended: a log line always, a signed webhook when configured.

The webhook is a JSON POST of the report, sent by its own task after the report is
written, so a slow or failing endpoint never delays or fails the import. It is
signed like GitHub's: ``X-Backfill-Signature-256: sha256=<hex HMAC-SHA256 of the body>``
with ``BACKFILL_WEBHOOK_SECRET``; verify it with :func:`signature` and a constant-time
comparison. A failed delivery (no answer, or any status but 2xx) is retried with
exponential backoff, ``BACKFILL_WEBHOOK_RETRIES`` times; the same import is always the
same ``X-Backfill-Delivery``, so a receiver can ignore a repeat.
"""
from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request

import orjson

from worker.errors import TransientError

SIGNATURE_HEADER = "X-Backfill-Signature-256"
#: The report fields of the one log line every finished import gets.
LOG_FIELDS = ("status", "rows", "imported", "duplicates", "errors", "warnings", "seconds", "rows_per_second",
              "failure")


class WebhookFailed(TransientError):
    """The endpoint did not take the notification (worth retrying)."""


def log_fields(report: dict) -> dict:
    """The fields of the ``import finished`` log line."""
    return {k: report[k] for k in LOG_FIELDS if report.get(k) is not None}


def body(report: dict) -> bytes:
    """The webhook's JSON: the report, with the event's name."""
    return orjson.dumps({"event": "import.finished", **report})


def signature(secret: str, payload: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``payload``."""
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def backoff_s(retries: int, base_s: float, cap_s: float = 600.0) -> float:
    """Seconds before retry number ``retries + 1``: base, 2 x base, 4 x base... up to ``cap_s``."""
    return min(base_s * 2 ** retries, cap_s)


def post(url: str, report: dict, secret: str, timeout_s: float = 10.0) -> int:
    """POST the report to ``url``; its HTTP status, or WebhookFailed."""
    payload = body(report)
    headers = {"Content-Type": "application/json", "User-Agent": "backfill",
               "X-Backfill-Event": "import.finished", "X-Backfill-Delivery": str(report.get("import_id", ""))}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, payload)
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        raise WebhookFailed(f"{url} answered {exc.code}") from None
    except OSError as exc:  # refused, unreachable, timed out
        raise WebhookFailed(f"{url}: {exc}") from None
