"""Counting a chunk's deliveries that never finish, and setting a poison chunk aside.

A chunk whose processing kills its worker (a crash in a C extension, the out-of-memory
killer, the hard time limit) is delivered again, and would kill the next worker too,
forever. Each delivery is counted when it starts and uncounted when it ends, whatever
its outcome; a count left over is a delivery that took its worker down with it. When a
chunk starts with more than ``BACKFILL_MAX_CHUNK_TRIES`` such deaths behind it, it is
committed as errors (code ``chunk_poison``) instead of being processed again.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from worker.logs import get_logger
from worker.store import TRANSIENT, Store

log = get_logger("backfill.worker")


def poison_reason(deaths: int) -> str:
    """The error text of a chunk whose deliveries all stopped their worker."""
    return (f"it stopped its worker {deaths} times (killed, out of memory or over the time limit), "
            "so it was set aside")


@contextlib.contextmanager
def delivery(st: Store, import_id: str, chunk: int, max_tries: int) -> Iterator[int]:
    """Count this delivery of ``chunk`` while the block runs; yields the deaths before it
    when they exceed ``max_tries`` (the block must then fail the chunk), else 0."""
    deaths = st.begin_try(import_id, chunk) - 1
    if deaths > max_tries:
        log.error("poison chunk: it stopped its worker every time", chunk=chunk, deaths=deaths)
    try:
        yield deaths if deaths > max_tries else 0
    finally:
        try:
            st.end_try(import_id, chunk)
        except TRANSIENT as exc:  # Redis is down: this delivery then counts as one death, no more
            log.warning("could not record the end of a delivery", chunk=chunk, error=str(exc))
