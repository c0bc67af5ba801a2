"""Small helpers shared by the integration tests."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "producers" / "examples"
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30, what: str = "the condition",
               every: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something true, and return that: a test waits for what it
    needs, not a guessed time (too short on a slow machine, wasted on a fast one). An AssertionError
    saying ``what`` was not reached once ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what} (last: {got!r})")
        time.sleep(every)


def clear_keys(client) -> None:
    """Delete backfill's keys, all but the data epoch: the workers of the session would otherwise take a
    test's fresh start for Redis losing its data (which they say, and count)."""
    from worker import keys

    for key in client.scan_iter(match="bf:*", count=1000):
        if key != keys.EPOCH.encode():
            client.delete(key)


def stream_reports(store, key_id: str, timeout: float = 60) -> list[dict]:
    """The finished reports of a write key's tracking streams, once every one has ended (a killed
    server's stream is ended by the sweeper when its heartbeats stop)."""
    import time

    import orjson

    from worker import keys

    deadline = time.monotonic() + timeout
    mine: list[dict] = []
    while time.monotonic() < deadline:
        states = [store.imports.state(i.decode()) for i in store.r.zrange(keys.IMPORTS_INDEX, 0, -1)]
        mine = [s for s in states if s.get("source") == f"track:{key_id}"]
        if mine and all(s.get("report") for s in mine):
            return [orjson.loads(s["report"]) for s in mine]
        time.sleep(0.2)
    raise AssertionError(f"the streams of {key_id} did not end in {timeout} s: {mine}")


def run_import(path, timeout: float = 60, **options) -> dict:
    """Enqueue ``path`` through the public API and wait for its report."""
    from producers.api import enqueue_import

    handle = enqueue_import(path, **options)
    report = handle.wait(timeout=timeout)
    assert report is not None, f"import {handle.import_id} did not finish in {timeout} s: {handle.state()}"
    report["_handle"] = handle
    return report


def drain_all(outbox, results, claim_idle_ms: int = 60_000) -> int:
    """Drain the outbox into ``results`` until nothing is left; the events newly stored."""
    from worker.sink.drain import drain_once

    stored = 0
    while True:
        drained = drain_once(outbox, results, batch=7, block_ms=50, claim_idle_ms=claim_idle_ms)
        if not drained.entries:
            return stored
        stored += drained.new_events


def outbox_events(store, import_id: str | None = None) -> list[dict]:
    """The event JSONs the outbox holds (of one import, or of all), in commit order."""
    import orjson

    from worker import keys

    found = []
    for _, fields in store.r.xrange(keys.OUTBOX):
        if fields.get(b"events") and (import_id is None or fields.get(b"import") == import_id.encode()):
            found += [orjson.loads(line) for line in fields[b"events"].split(b"\n")]
    return found


def counted_once(report: dict) -> bool:
    """Every row is imported, a duplicate or an error: exactly once."""
    return report["imported"] + report["duplicates"] + report["errors"] == report["rows"] == report["rows_expected"]


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path
