"""Celery tasks: the chunk task, the report task and the trigger mover.

The task bodies are thin: :func:`run_chunk` and :func:`run_finalize` do the
work against a :class:`~worker.store.Store`, so tests can call them directly.
"""
from __future__ import annotations

import dataclasses
import gc
import time

import orjson
import structlog
from celery import signals
from celery.exceptions import SoftTimeLimitExceeded

from worker.app import app
from worker.errors import PermanentError
from worker.events import chunk as core
from worker.events import rules
from worker.logs import bind_chunk, get_logger
from worker.ops import notify, sweeper
from worker.ops.poison import delivery, poison_reason
from worker.ops.report import build_report
from worker.people.apply import fail_people_chunk, run_people
from worker.settings import Settings, get_settings
from worker.spec import ImportSpec
from worker.store import TRANSIENT, CommitResult, Store, connect, now_ms

log = get_logger("backfill.worker")
_store: Store | None = None


def store() -> Store:
    """This process's store (one connection pool per process)."""
    global _store
    if _store is None:
        _store = Store(connect(app.conf.backfill_redis_url))
    return _store


def run_chunk(st: Store, import_id: str, chunk: int, settings: Settings, *, now: float | None = None) -> CommitResult:
    """Validate, decide and commit one chunk; a chunk already committed changes nothing."""
    spec = st.spec(import_id)
    raw = st.load_chunk(import_id, chunk)
    if raw is None:
        # The commit deletes a chunk's rows, so no rows usually means a redelivery.
        if st.chunk_done(import_id, chunk):
            return CommitResult(False, 0, 0, st.all_done(import_id))
        raise PermanentError(f"the rows of chunk {chunk} of import {import_id} are gone (expired or deleted)")
    rows, numbers = core.decode_payload(raw)
    return commit_rows(st, spec, chunk, rows, numbers, settings, time.time() if now is None else now)


def commit_rows(st: Store, spec: ImportSpec, chunk: int, rows: list[list[str]], numbers: list[int],
                settings: Settings, at: float) -> CommitResult:
    """Validate rows, look up their people, apply the trigger rules, and commit them as ``chunk``."""
    validated = core.validate(spec, rows, numbers, at, settings.clock_skew_s)
    existing = st.existing_people(spec.identifier, list({e.person_key for e in validated.events}))
    campaigns = rules.by_event(st.campaigns()) if spec.trigger else {}
    outcome = core.assemble(spec, validated, rows, numbers, existing, campaigns, at, settings.clock_skew_s)
    return st.commit(spec, chunk, outcome, at_ms=round(at * 1000), retention_s=settings.retention_s)


def fail_chunk(st: Store, import_id: str, chunk: int, reason: str, settings: Settings,
               code: str = core.CHUNK_FAILED) -> CommitResult:
    """Commit a chunk that cannot be processed: every row an error (``code``).

    The import then completes (with errors) instead of waiting for this chunk forever.
    """
    outcome = core.failed_payload(st.load_chunk(import_id, chunk), reason, code)
    return st.commit(st.spec(import_id), chunk, outcome, at_ms=now_ms(), retention_s=settings.retention_s,
                     failed=True)


def spec_info(st: Store, import_id: str) -> dict:
    """The report's description of the import's options."""
    try:
        spec = st.spec(import_id)
    except PermanentError:
        return {"import_id": import_id}
    return {
        "import_id": import_id, "source": spec.source, "kind": spec.kind, "dialect": spec.columns.dialect,
        "identifier": spec.identifier, "trigger": spec.trigger, "trigger_window_s": spec.trigger_window_s,
        "dry_run": spec.dry_run, "create_people": spec.create_people, "encoding": spec.encoding,
        "delimiter": spec.delimiter, "timezone": spec.timezone,
        **({"data_to_process": spec.data_to_process, "empty_cells": spec.empty_cells, "id_only": spec.id_only,
            "column_warnings": list(spec.columns.notes)} if spec.kind == "people" else {}),
    }


def run_finalize(st: Store, import_id: str, settings: Settings) -> dict | None:
    """Write the report once and announce it; None when another run already did."""
    report = build_report(st.state(import_id), spec_info(st, import_id))
    if not st.finalize(import_id, report["status"], report, settings.retention_s):
        return None
    with bind_chunk(import_id):
        log.info("import finished", **notify.log_fields(report))
    if settings.webhook_url:
        send_webhook.apply_async((import_id,))  # its own task: a slow endpoint never holds the report
    return report


@signals.worker_init.connect
def _tune_gc(**_: object) -> None:
    # A chunk allocates tens of thousands of short-lived objects; with the default threshold (700)
    # the collector ran dozens of times per chunk. Freeze what startup loaded, collect less often.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


@signals.task_prerun.connect
def _bind_task(task=None, args=None, **_: object) -> None:
    # Celery's own lines about a task (received, succeeded, retry) then carry its import and chunk too.
    if task is not None and task.name in ("backfill.process_chunk", "backfill.finalize_import") and args:
        structlog.contextvars.bind_contextvars(import_id=args[0], **({"chunk": args[1]} if len(args) > 1 else {}))


@signals.task_postrun.connect
def _unbind_task(**_: object) -> None:
    structlog.contextvars.unbind_contextvars("import_id", "chunk")


#: Failures worth retrying (with backoff); anything else in a chunk is recorded as its rows' errors.
_RETRY = dict(autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=60, max_retries=20)


@app.task(name="backfill.process_chunk", bind=True, **_RETRY)
def process_chunk(self, import_id: str, chunk: int) -> None:
    """Import one chunk; the commit that completes the import enqueues its report."""
    settings = get_settings()
    with bind_chunk(import_id, chunk):
        if store().spec(import_id).kind == "people":
            # People chunks apply in file order: this task applies whatever is next (people_run.py).
            run_people(store(), import_id, settings,
                       on_finalize=lambda: finalize_import.apply_async((import_id,)),
                       on_handover=lambda n: process_chunk.apply_async((import_id, n)))
            return
        started = time.perf_counter()
        with delivery(store(), import_id, chunk, settings.max_chunk_tries) as deaths:
            try:
                if deaths:
                    result = fail_chunk(store(), import_id, chunk, poison_reason(deaths), settings,
                                        core.CHUNK_POISON)
                else:
                    result = run_chunk(store(), import_id, chunk, settings)
            except TRANSIENT:
                raise
            except SoftTimeLimitExceeded:
                log.error("chunk over its time limit", limit_s=settings.chunk_soft_time_limit_s)
                result = fail_chunk(store(), import_id, chunk, "the chunk ran over its time limit", settings)
            except Exception as exc:  # a bug or bad state: report the rows, never hang the import
                log.exception("chunk failed", error=str(exc))
                result = fail_chunk(store(), import_id, chunk, f"{type(exc).__name__}: {exc}", settings)
        # One line per chunk (not per row): operators and the benchmark read chunk times from it.
        seconds = time.perf_counter() - started
        log.info("chunk done", committed=result.committed, imported=result.imported,
                 duplicates=result.duplicates, ms=round(seconds * 1000, 1))
        if result.committed:
            store().observe_chunk(seconds)
        if result.finalize:
            finalize_import.apply_async((import_id,))


@app.task(name="backfill.finalize_import", bind=True, **_RETRY)
def finalize_import(self, import_id: str) -> None:
    """Write the import's report and notify, exactly once however often it runs."""
    with bind_chunk(import_id):
        run_finalize(store(), import_id, get_settings())


@app.task(name="backfill.webhook", bind=True, max_retries=None)
def send_webhook(self, import_id: str) -> int | None:
    """POST the import's report to BACKFILL_WEBHOOK_URL, signed; retried with backoff when it fails."""
    settings = get_settings()
    raw = store().state(import_id).get("report")
    if not raw or not settings.webhook_url:
        return None
    with bind_chunk(import_id):
        try:
            status = notify.post(settings.webhook_url, orjson.loads(raw), settings.webhook_secret)
        except notify.WebhookFailed as exc:
            if self.request.retries >= settings.webhook_retries:
                log.error("webhook gave up", url=settings.webhook_url, error=str(exc), tries=self.request.retries + 1)
                return None
            delay = notify.backoff_s(self.request.retries, settings.webhook_backoff_s)
            log.warning("webhook failed, will retry", url=settings.webhook_url, error=str(exc), in_s=delay)
            raise self.retry(countdown=delay) from None
        log.info("webhook delivered", url=settings.webhook_url, status=status, tries=self.request.retries + 1)
        return status


@app.task(name="backfill.move_due_triggers", **_RETRY)
def move_due_triggers() -> int:
    """Move scheduled triggers that are due to the deliveries stream."""
    moved = store().move_due_triggers(now_ms())
    if moved:
        log.info("triggers due", moved=moved)
    return moved


@app.task(name="backfill.sweep", **_RETRY)
def sweep_pending() -> dict:
    """Send again the chunks and reports that went quiet (see :mod:`worker.ops.sweeper`)."""
    settings = get_settings()
    st = store()

    def fail_lost(import_id: str, chunk: int) -> None:
        reason = "its rows expired before a worker processed them"
        spec = st.spec(import_id)
        result = fail_people_chunk(st, spec, chunk, reason, settings) if spec.kind == "people" \
            else fail_chunk(st, import_id, chunk, reason, settings)
        if result.finalize:
            finalize_import.apply_async((import_id,))

    swept = sweeper.sweep(st, settings.requeue_after_s,
                          send_chunk=lambda i, c: process_chunk.apply_async((i, c)),
                          send_report=lambda i: finalize_import.apply_async((i,)), fail_chunk=fail_lost)
    return dataclasses.asdict(swept)


@app.task(name="backfill.prune_dedupe", **_RETRY)
def prune_dedupe() -> int:
    """Give back the memory of expired dedupe marks (commit.lua already ignores them)."""
    removed = store().prune_dedupe(now_ms())
    if removed:
        log.info("dedupe marks pruned", removed=removed)
    return removed
