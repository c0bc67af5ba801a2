"""Queueing an import's chunks: backpressure, heartbeats, retries, and stopping cleanly.

A :class:`Queueing` stores each chunk's rows and sends its task, in a thread of its own so
that ``enqueue_import`` returns at once and progress shows from the first chunk. It pauses
while too many chunks wait uncommitted (beating the producer's heartbeat, so the sweeper
knows it is alive), retries transient Redis and broker failures, and stops when the import is
cancelled, when asked (Ctrl-C), or when Redis stays away: what it queued is then imported
and the import ends as interrupted. It checks Redis as it goes (its guard, every
``BACKFILL_REDIS_CHECK_S``): a memory policy that evicts keys stops it the same way, and a Redis
that lost its data (the import with it) stops it with nothing more to end.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TypeVar

from worker.errors import ImportNotFound, RedisMisconfigured
from worker.logs import bind_chunk, get_logger
from worker.settings import Settings
from worker.store.work import encode_rows

from . import segment
from .source import Source
from .split import Plan, chunks, raw_chunks
from .spool import Encoded

log = get_logger("backfill.producer")
#: The producer warns when no chunk of its import commits for this long while it waits.
STALL_WARNING_S = 15.0
#: How often a producer waiting for room says it is alive (the sweeper interrupts silent ones).
HEARTBEAT_S = 5.0
#: How often a producer waiting for the sink brings up to date the figures its import shows.
SAY_EVERY_S = 1.0
T = TypeVar("T")


class Queueing:
    """One import's chunks, being queued by this process."""

    def __init__(self, st, tasks, source: Source, plan: Plan, import_id: str, settings: Settings,
                 on_chunk: Callable[[int], None] | None = None) -> None:
        self.st, self.tasks, self.source, self.plan = st, tasks, source, plan
        self.import_id, self.settings, self.on_chunk = import_id, settings, on_chunk
        self.count = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, background: bool) -> None:
        """Queue in a thread of its own (not a daemon: the process stays up until it is done), or now."""
        if background:
            self._thread = threading.Thread(target=self._run, name=f"queue-{self.import_id}")
            self._thread.start()
        else:
            self._run()
            if self.error is not None:
                raise self.error

    def stop(self) -> None:
        """Queue no more chunks; the import ends as interrupted with what was queued."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """True once queueing ended (raises its error, if it failed)."""
        # Waiting on an Event, not Thread.join: a Ctrl-C that interrupts Thread.join can leave the thread
        # marked as ended while it runs (CPython 3.11), and the interpreter would then exit under it.
        if not self._done.wait(timeout):
            return False
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error
        return True

    def _run(self) -> None:
        try:
            self._queue()
        finally:
            self._done.set()

    def _queue(self) -> None:
        st, tasks, import_id = self.st, self.tasks, self.import_id
        with bind_chunk(import_id), self.source:
            try:
                self.count = queue_chunks(st, tasks.process_chunk, self.source, self.plan, import_id, self.settings,
                                          self.on_chunk, self._stop)
                if self._stop.is_set():
                    _interrupt(st, tasks, import_id)
                elif not st.work.room(import_id).stop and st.work.set_total(import_id, self.count):
                    tasks.finalize_import.apply_async((import_id,))
            except ImportNotFound as exc:  # Redis lost its data: there is no import left to end
                self.error = exc
                log.error("Redis no longer knows the import (it lost its data): queueing stopped",
                          chunks_queued=self.count)
            except RedisMisconfigured as exc:  # (said by the store's guard) what was queued ends as interrupted
                self.error = exc
                _interrupt(st, tasks, import_id)
            except BaseException as exc:  # a Redis that stayed away: what was queued ends as interrupted
                self.error = exc
                log.error("queueing failed", error=str(exc), chunks_queued=self.count)
                _interrupt(st, tasks, import_id)


def _interrupt(st, tasks, import_id: str) -> None:
    """Best effort: end an import whose producer is stopping (the sweeper does it otherwise)."""
    try:
        _, due = st.imports.stop(import_id, "interrupted")
        if due:
            tasks.finalize_import.apply_async((import_id,))
        log.warning("producer stopped: the import ends as interrupted with what was queued")
    except Exception as exc:  # Redis is gone too: the sweeper will notice the silent producer
        log.warning("producer stopped; the sweeper will end the import", error=str(exc))


def queue_chunks(st, task, source: Source, plan: Plan, import_id: str, settings: Settings,
                 on_chunk: Callable[[int], None] | None = None, stop: threading.Event | None = None) -> int:
    """Store each chunk's rows and send ``task(import_id, chunk)`` for it, with backpressure; how many.

    Stops early when the import is cancelled (or was declared interrupted). A transient failure of
    Redis or of the broker (unreachable, full) is retried with backoff for ``producer_retry_s``.
    """
    count = 0
    for chunk in _encoded(source, plan, settings):
        if stop is not None and stop.is_set():
            break
        _retrying(settings, "check Redis", st.guard.check)  # (at most every BACKFILL_REDIS_CHECK_S)
        if not _wait_for_room(st, import_id, settings, stop):
            break
        stored = _retrying(settings, "store a chunk", partial(
            st.work.put_encoded, import_id, chunk.number, chunk.payload, chunk.last_row, settings.retention_s))
        if not stored:
            break  # stopped between the room check and the store
        _retrying(settings, "queue a task", partial(task.apply_async, (import_id, chunk.number)))
        count += 1
        if on_chunk:
            on_chunk(count)
    return count


def _encoded(source: Source, plan: Plan, settings: Settings) -> Iterator[Encoded]:
    """The chunks to queue: those kept while the file was scanned (one pass), else read from it again."""
    if source.spool is not None and source.spool.complete:  # (Segment files are never spooled)
        yield from source.spool.chunks()
        return
    if plan.raw and plan.columns.dialect != "segment":
        yield from raw_chunks(source, plan, settings.chunk_rows, settings.chunk_bytes)
        return
    reader = segment.chunks if plan.columns.dialect == "segment" else chunks
    for chunk in reader(source, plan, settings.chunk_rows, settings.chunk_bytes):
        yield Encoded(chunk.number, encode_rows(chunk.rows, chunk.row_numbers), len(chunk.rows), chunk.row_numbers[-1])


def _wait_for_room(st, import_id: str, settings: Settings, stop: threading.Event | None = None) -> bool:
    """Backpressure: pause while too many chunks of this import wait uncommitted, or while the outbox
    would hold ``outbox_limit`` entries the sinks have not stored (the outbox must not eat Redis):
    the entries there and the chunks of every import still in flight, which add theirs when they
    commit; so the limit holds, give or take the chunks other producers queue at the same moment.
    Beats the producer's heartbeat meanwhile; the import says why it waits, with figures kept fresh
    (at most :data:`SAY_EVERY_S` old). False when the import has stopped (cancelled)."""
    room = _retrying(settings, "read the import", lambda: st.work.room(import_id))
    waited_since = beat = time.monotonic()
    warned = False
    said, said_at = "", 0.0
    limit = settings.outbox_limit
    full = lambda room: bool(limit) and room.outbox_due() >= limit
    while not room.stop and (room.in_flight >= settings.max_inflight_chunks or full(room)):
        if stop is not None and stop.is_set():
            break
        now = time.monotonic()
        if full(room) and (not said or now - said_at >= SAY_EVERY_S):
            why = _why_full(st, settings, room)
            if why != said:
                _retrying(settings, "say why it waits", partial(st.work.say_waiting, import_id, why))
                if not said:
                    log.warning("waiting " + why, import_id=import_id)
            said, said_at = why, now
        elif not warned and not said and now - waited_since > STALL_WARNING_S:
            log.warning("no chunk committed lately: is a worker running? start one with `backfill worker`",
                        in_flight=room.in_flight)
            warned = True
        if now - beat > HEARTBEAT_S:
            _retrying(settings, "check Redis", st.guard.check)
            _retrying(settings, "beat", lambda: st.work.heartbeat(import_id))
            beat = now
        time.sleep(0.02 if not said else 0.2)
        room = _retrying(settings, "read the import", lambda: st.work.room(import_id))
    if said:
        _retrying(settings, "say it goes on", lambda: st.work.say_waiting(import_id, ""))
        log.info("the sink caught up; queueing again", import_id=import_id)
    if stop is not None and stop.is_set():
        return False
    if room.stop:
        log.warning("import stopped: no more chunks are queued", reason=room.stop)
    return not room.stop


def _why_full(st, settings: Settings, room) -> str:
    """What an import waiting for the sink says (``backfill status``, ``top``, the API)."""
    sinks = _retrying(settings, "read the outbox", st.work.sinks)
    return (f"for the sink: {room.outbox_due()} outbox entries not stored yet (BACKFILL_OUTBOX_LIMIT "
            f"{settings.outbox_limit})" + (f", {room.chunks_pending} of them chunks being committed"
                                           if room.chunks_pending else "")
            + ("" if sinks else "; no sink is running: start `backfill worker` (it runs one) or `backfill sink`"))


def _retrying(settings: Settings, what: str, operation: Callable[[], T]) -> T:
    """``operation()``, tried again with a growing pause while Redis or the broker fails transiently
    (unreachable, busy loading, out of memory), for at most ``settings.producer_retry_s``."""
    from kombu.exceptions import OperationalError

    from worker.store.client import is_transient

    deadline = time.monotonic() + settings.producer_retry_s
    pause = 0.1
    while True:
        try:
            return operation()
        except Exception as exc:
            if not (is_transient(exc) or isinstance(exc, OperationalError)) or time.monotonic() + pause > deadline:
                raise
            log.warning("Redis failed; the producer waits and tries again", doing=what, error=str(exc),
                        retry_in_s=round(pause, 1))
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
