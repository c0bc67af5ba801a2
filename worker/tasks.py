"""The Celery surface: one task per kind of work, each a few lines over the code that does it.

A chunk's route goes one way. An events chunk: :func:`process_chunk` ->
:func:`worker.ops.retries.run_or_reject` (deliveries counted, transient failures retried, the
others rejected into error rows) -> :mod:`worker.events.pipeline` -> the store. A people or
Segment chunk: :func:`process_chunk` -> :func:`worker.ordered.apply.run_ordered` (the import's
chunks in file order under its lease, each through the same guard) -> :mod:`worker.people.pipeline`
or :mod:`worker.segment.pipeline` -> the store. The commit that completes an import queues
:func:`finalize_import`; beat runs the trigger mover, the sweeper and the dedupe pruning.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import os
import time

import orjson
import structlog
from celery import signals

from worker import keys
from worker.app import app
from worker.context import Context
from worker.errors import ImportNotFound, RedisMisconfigured
from worker.events import pipeline as events
from worker.logs import bind_chunk, get_logger
from worker.ops import notify, skew, sweeper
from worker.ops.finalize import finalize
from worker.ops.retries import run_or_reject
from worker.ordered import apply as ordered
from worker.settings import Settings, get_settings
from worker.store import TRANSIENT, Store

log = get_logger("backfill.worker")
_context: Context | None = None


def context() -> Context:
    """This worker process's context (:mod:`worker.context`), built at its first use in each process: the
    settings its environment gives (a worker's entry point is Celery's, which reads only that) and the
    store on the Redis the app was configured with, one connection pool a process."""
    global _context
    if _context is None:
        _context = Context.on(get_settings(), app.conf.backfill_redis_url)
    return _context


def run_finalize(st: Store, import_id: str, settings: Settings) -> dict | None:
    """Write the import's report once and queue its notification (its own task)."""
    return finalize(st, import_id, settings, send_notify=lambda i: notify_finished.apply_async((i,)))


@signals.worker_init.connect
def _tune_gc(**_: object) -> None:
    # A chunk allocates tens of thousands of short-lived objects; with the default threshold (700)
    # the collector ran dozens of times per chunk. Freeze what startup loaded, collect less often.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def refuse_misconfigured_redis(role: str) -> None:
    """At the start of a worker or of beat: exit (78, EX_CONFIG) with the one line saying how to fix a
    Redis that evicts keys; meet the data epoch otherwise. A Redis not answering yet is no reason: the
    checks run again while the process works."""
    try:
        context().store.guard.start()
    except RedisMisconfigured as exc:
        log.error(str(exc), process=role)
        logging.shutdown()  # (flushed: the exit below skips it)
        os._exit(78)  # (raising here would print Celery's traceback around the line)


@signals.worker_init.connect
def _check_redis_worker(**_: object) -> None:
    refuse_misconfigured_redis("worker")


@signals.beat_init.connect
def _check_redis_beat(**_: object) -> None:
    refuse_misconfigured_redis("beat")


def redis_refuses(st: Store) -> bool:
    """True while Redis evicts keys (said in the log when found): tasks then do nothing, their work stays
    pending and the sweeper sends it again once Redis is fixed. Checked every BACKFILL_REDIS_CHECK_S."""
    try:
        st.guard.check()
    except RedisMisconfigured:
        return True
    return False


@signals.worker_ready.connect
def _start_sink(**_: object) -> None:
    if context().settings.worker_sink:
        from worker.sink import thread

        thread.start(context().store.r, context().settings, context().store.guard)


@signals.worker_shutting_down.connect
def _stop_sink(**_: object) -> None:
    from worker.sink import thread

    thread.stop()


@signals.task_prerun.connect
def _bind_task(task=None, args=None, **_: object) -> None:
    # Celery's own lines about a task (received, succeeded, retry) then carry its import and chunk too.
    if task is not None and task.name in ("backfill.process_chunk", "backfill.finalize_import") and args:
        structlog.contextvars.bind_contextvars(import_id=args[0], **({"chunk": args[1]} if len(args) > 1 else {}))


@signals.task_postrun.connect
def _unbind_task(**_: object) -> None:
    structlog.contextvars.unbind_contextvars("import_id", "chunk")


@signals.task_postrun.connect
def _check_clock(task=None, **_: object) -> None:
    # How far this host's clock is off Redis's (measured at each chunk's read): a gauge, a warning when
    # over the allowance. Nothing most of the time (see worker/ops/skew.py); never fails the task.
    if task is None:
        return
    try:
        skew.check(context().store, task.request.hostname or "", context().settings.clock_skew_s)
    except TRANSIENT:
        pass


#: Failures worth retrying (with backoff); anything else in a chunk is recorded as its rows' errors.
_RETRY = dict(autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=60, max_retries=20)
_RETRY_REDIS = dict(autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=60)


@app.task(name="backfill.process_chunk", bind=True, **_RETRY)
def process_chunk(self, import_id: str, chunk: int) -> None:
    """Import one chunk; the commit that completes the import enqueues its report. A chunk of an import
    Redis does not know (it lost its data) ends quietly, and so does every chunk while Redis evicts keys."""
    st = context().store
    if redis_refuses(st):
        return
    try:
        _process_chunk(st, import_id, chunk)
    except ImportNotFound:
        with bind_chunk(import_id, chunk):
            log.warning("chunk of an import Redis does not know (lost or expired): nothing to do")


def _process_chunk(st: Store, import_id: str, chunk: int) -> None:
    settings = context().settings
    if st.imports.spec(import_id).kind in ordered.KINDS:
        # In file order: this task applies whatever chunk is next, not necessarily ``chunk``.
        ordered.run_ordered(st, import_id, settings,
                            on_finalize=lambda: finalize_import.apply_async((import_id,)),
                            on_handover=lambda n: process_chunk.apply_async((import_id, n)))
        return
    started = time.perf_counter()
    result = run_or_reject(st.work, import_id, chunk, settings.max_chunk_tries,
                     run=lambda: events.run_chunk(st, import_id, chunk, settings),
                     fail=lambda reason, code: events.fail_chunk(st, import_id, chunk, reason, settings, code))
    # One line per chunk (not per row): operators and the benchmark read chunk times from it.
    seconds = time.perf_counter() - started
    with bind_chunk(import_id, chunk):
        log.info("chunk done", committed=result.committed, imported=result.imported,
                 duplicates=result.duplicates, ms=round(seconds * 1000, 1))
    if result.committed:
        st.metrics.observe_chunk(seconds)
    if result.finalize:
        finalize_import.apply_async((import_id,))


@app.task(name="backfill.finalize_import", bind=True, **_RETRY)
def finalize_import(self, import_id: str) -> None:
    """Write the import's report and notify, exactly once however often it runs (an import Redis does not
    know has no report: it ends quietly)."""
    st = context().store
    if redis_refuses(st):
        return
    try:
        run_finalize(st, import_id, context().settings)
    except ImportNotFound:
        with bind_chunk(import_id):
            log.warning("report of an import Redis does not know (lost or expired): nothing to write")


@app.task(name="backfill.notify", bind=True, max_retries=None, **_RETRY_REDIS)
def notify_finished(self, import_id: str, announced: bool = False, tries: int = 0) -> None:
    """Announce a finished import: the ``import finished`` line, then the signed webhook when
    BACKFILL_WEBHOOK_URL is set, sent in a thread of its own (notify.Senders: the task returns at once,
    and a hanging endpoint holds no pool process) and retried with backoff. At least once: pending work
    until done. ``tries``: deliveries already failed."""
    settings = context().settings
    st = context().store
    raw = st.imports.state(import_id).get("report")
    with bind_chunk(import_id):
        if raw and not announced:
            log.info("import finished", **notify.log_fields(orjson.loads(raw)))
    if not (raw and settings.webhook_url):
        st.work.drop(import_id, keys.NOTIFY)
        return
    st.work.touch(import_id, keys.NOTIFY)  # alive: the sweeper leaves it to the sender
    if not _senders.submit(lambda: _deliver(st, import_id, orjson.loads(raw), settings, tries)):
        notify_finished.apply_async((import_id,), {"announced": True, "tries": tries}, countdown=notify.BUSY_RETRY_S)


_senders = notify.Senders()


def _deliver(st: Store, import_id: str, report: dict, settings: Settings, tries: int) -> None:
    """One webhook delivery, in a sender thread; a failure to retry is queued again after its backoff."""
    notify.deliver(st.work, import_id, report, settings, tries, again=lambda tries, delay: notify_finished.apply_async(
        (import_id,), {"announced": True, "tries": tries}, countdown=delay))


@app.task(name="backfill.move_due_triggers", **_RETRY)
def move_due_triggers() -> int:
    """Move scheduled triggers that are due to the deliveries stream."""
    if redis_refuses(context().store):
        return 0
    st = context().store
    moved = st.triggers.move_due(int(st.now() * 1000))  # due by Redis's clock, whichever worker runs this
    if moved:
        log.info("triggers due", moved=moved)
    return moved


@app.task(name="backfill.sweep", **_RETRY)
def sweep_pending() -> dict:
    """Send again the chunks and reports that went quiet (see :mod:`worker.ops.sweeper`)."""
    settings = context().settings
    st = context().store
    if redis_refuses(st):
        return {}

    def fail_lost(import_id: str, chunk: int, reason: str = "its rows expired before a worker processed them") -> None:
        spec = st.imports.spec(import_id)
        if spec.kind in ordered.KINDS:
            result = ordered.steps_for(spec).fail_chunk(st, spec, chunk, reason, settings)
        else:
            result = events.fail_chunk(st, import_id, chunk, reason, settings)
        if result.finalize:
            finalize_import.apply_async((import_id,))

    swept = sweeper.sweep(st, settings.requeue_after_s,
                          send_chunk=lambda i, c: process_chunk.apply_async((i, c)),
                          send_report=lambda i: finalize_import.apply_async((i,)), fail_chunk=fail_lost,
                          send_notify=lambda i: notify_finished.apply_async((i,)),
                          producer_timeout_s=settings.producer_timeout_s,
                          fail_lost=lambda i, c: fail_lost(i, c, "Redis lost it before its commit (rolled back)"))
    return dataclasses.asdict(swept)


@app.task(name="backfill.prune_dedupe", **_RETRY)
def prune_dedupe() -> int:
    """Give back the memory of expired dedupe marks (commit.lua already ignores them)."""
    if redis_refuses(context().store):
        return 0
    st = context().store
    removed = st.events.prune_dedupe(int(st.now() * 1000))
    if removed:
        log.info("dedupe marks pruned", removed=removed)
    return removed
