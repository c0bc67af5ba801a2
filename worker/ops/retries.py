"""The guard every delivery of a chunk passes: retried, or rejected into error rows.

In the words of Celery (and dramatiq's Retries middleware): a transient failure is *retried*
(raised, for the task's autoretry), and a chunk that cannot be processed is *rejected* (its rows
committed as errors), so that it is never retried for ever.

A chunk whose processing kills its worker (a crash in a C extension, the out-of-memory
killer, the hard time limit) is delivered again, and would kill the next worker too,
forever. Each delivery is counted when it starts and uncounted when it ends, whatever
its outcome; a count left over is a delivery that took its worker down with it. When a
chunk starts with more than ``BACKFILL_MAX_CHUNK_TRIES`` such deaths behind it, it is
committed as errors (code ``chunk_poison``) instead of being processed again. A chunk
that raises (a bug, bad state, its soft time limit) is committed as errors too
(``chunk_failed``), so its import ends instead of waiting for it; a transient failure of
Redis is raised, for the task to retry, and so is an import Redis does not know (its task ends
quietly: nothing can be committed to an import that is gone). Every kind of chunk (events, people,
Segment) goes through :func:`run_or_reject`, once per chunk.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from celery.exceptions import SoftTimeLimitExceeded

from worker.errors import ImportNotFound
from worker.logs import bind_chunk, get_logger
from worker.problems import CHUNK_FAILED, CHUNK_POISON
from worker.store import TRANSIENT
from worker.store.work import Work

log = get_logger("backfill.worker")
R = TypeVar("R")


def poison_reason(deaths: int) -> str:
    """The error text of a chunk whose deliveries all stopped their worker."""
    return (f"it stopped its worker {deaths} times (killed, out of memory or over the time limit), "
            "so it was set aside")


def run_or_reject(work: Work, import_id: str, chunk: int, max_tries: int, *,
                 run: Callable[[], R], fail: Callable[[str, str], R]) -> R:
    """One counted delivery of ``chunk``: ``run()`` it, or reject it with ``fail(reason, code)`` when it
    killed too many workers before or raises now. Transient failures are raised, to be retried."""
    with bind_chunk(import_id, chunk):
        _flush_unrecorded_ends(work)
        deaths, token = work.begin_try(import_id, chunk)
        try:
            if deaths > max_tries:
                log.error("poison chunk: it stopped its worker every time", deaths=deaths)
                return fail(poison_reason(deaths), CHUNK_POISON)
            try:
                return run()
            except (*TRANSIENT, ImportNotFound):
                raise
            except SoftTimeLimitExceeded:
                log.error("chunk over its time limit")
                return fail("the chunk ran over its time limit", CHUNK_FAILED)
            except Exception as exc:  # a bug or bad state: report the rows, never hang the import
                log.exception("chunk failed", error=str(exc))
                return fail(f"{type(exc).__name__}: {exc}", CHUNK_FAILED)
        finally:
            _end(work, import_id, chunk, token)


#: Ends of deliveries that Redis did not take (it was down): recorded at this process's next delivery.
_unrecorded: list[tuple[str, int, str]] = []


def _end(work: Work, import_id: str, chunk: int, token: str) -> None:
    """Record the end of a delivery, trying again through a short Redis blip; a blip is not a death."""
    for pause in (0.2, 0.5, 1.0, 2.0, None):
        try:
            work.end_try(import_id, chunk, token)
            return
        except TRANSIENT as exc:
            if pause is None:
                # Still down: kept, and recorded at the next delivery in this process (only a delivery
                # whose process dies for good is ever counted as a death).
                log.warning("could not record the end of a delivery; will record it later", error=str(exc))
                _unrecorded.append((import_id, chunk, token))
                return
            time.sleep(pause)


def _flush_unrecorded_ends(work: Work) -> None:
    while _unrecorded:
        import_id, chunk, token = _unrecorded[0]
        work.end_try(import_id, chunk, token)  # (raises while Redis is down: the task is retried)
        _unrecorded.pop(0)
