"""Faults the chaos harness injects into real worker processes (loaded with ``celery worker -I``).

Read from the environment of the worker:

- ``CHAOS_SLOW_MS``: every events (and Segment) chunk sleeps this long before its work, so that
  a kill sent at a random moment lands in the middle of a chunk;
- ``CHAOS_RAISE_CHUNK``: that chunk number raises an unexpected error;
- ``CHAOS_POISON_CHUNK``: processing that chunk number kills its process (SIGKILL
  to itself, as the out-of-memory killer would), every time it is delivered;
- ``CHAOS_BUSY_DIR``: while a process works on a chunk, a file named by its pid
  exists there, so the harness can kill processes that are mid-chunk;
- ``CHAOS_CLOCK_OFFSET_S``: this worker's wall clock is that many seconds off (``time.time`` and
  ``time.time_ns``, the clock backfill's code reads, as a host with a wrong clock would give them;
  the monotonic clocks, and what Celery and kombu bound at import, are left alone).

Nothing here is imported by backfill itself.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from worker.events import pipeline
from worker.segment import pipeline as segment

_real_run_chunk = pipeline.run_chunk
_real_apply_segment = segment.apply_chunk
SLOW_S = int(os.environ.get("CHAOS_SLOW_MS", "0")) / 1000
RAISE_CHUNK = int(os.environ.get("CHAOS_RAISE_CHUNK", "-1"))
POISON_CHUNK = int(os.environ.get("CHAOS_POISON_CHUNK", "-1"))
BUSY_DIR = os.environ.get("CHAOS_BUSY_DIR")
CLOCK_OFFSET_S = float(os.environ.get("CHAOS_CLOCK_OFFSET_S", "0"))


@contextlib.contextmanager
def _busy(label: str):
    """The busy marker of this process while it works on a chunk (and the configured slowness)."""
    busy = Path(BUSY_DIR) / str(os.getpid()) if BUSY_DIR else None
    if busy is not None:
        busy.write_text(label)
    try:
        if SLOW_S:
            time.sleep(SLOW_S)
        yield
    finally:
        if busy is not None:
            busy.unlink(missing_ok=True)


def run_chunk(st, import_id, chunk, settings, **kwargs):
    """The real events pipeline, with the configured faults in front of it."""
    with _busy(f"{import_id} {chunk}"):
        if chunk == RAISE_CHUNK:
            raise RuntimeError(f"chaos: chunk {chunk} raises")
        if chunk == POISON_CHUNK:
            os.kill(os.getpid(), signal.SIGKILL)
        return _real_run_chunk(st, import_id, chunk, settings, **kwargs)


def apply_segment(st, spec, chunk, settings, **kwargs):
    """The real Segment chunk steps, slowed and marked busy as events chunks are."""
    with _busy(f"{spec.import_id} {chunk}"):
        return _real_apply_segment(st, spec, chunk, settings, **kwargs)


pipeline.run_chunk = run_chunk
segment.apply_chunk = apply_segment
if CLOCK_OFFSET_S:
    _real_time, _real_time_ns = time.time, time.time_ns
    time.time = lambda: _real_time() + CLOCK_OFFSET_S
    time.time_ns = lambda: _real_time_ns() + int(CLOCK_OFFSET_S * 1e9)
