"""The Python API for scripts: enqueue an import, then wait, poll or fetch its report.

>>> from producers.api import enqueue_import
>>> handle = enqueue_import("orders.csv", trigger=True, trigger_window="none")
>>> report = handle.wait(timeout=600)
>>> handle.exit_code()
0

Calls take ``context=`` (:class:`worker.context.Context`: settings and store, built once by the script
with ``Context.open(settings)``), or share :func:`default_context`. Everything a script uses is
importable from here (``__all__``), the errors it catches included:
ConfigError (a bad option or setting), ImportNotFound (an unknown or expired import id),
FileProblem (:func:`inspect`: a file that cannot be imported), ResultsUnavailable (the results
database did not answer), all under BackfillError; and TRANSIENT, a tuple for ``except TRANSIENT``:
Redis did not answer or was full (redis-py's errors), or TransientError.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import orjson

from worker import tasks
from worker.context import Context
from worker.errors import BackfillError, ConfigError, FileProblem, ImportNotFound, ResultsUnavailable, TransientError
from worker.logs import bind_chunk, get_logger
from worker.ops.report import EXIT_CODES, EXIT_TIMEOUT, problems_csv
from worker.settings import Settings, get_settings
from worker.sink.stored import dead_letters, import_stored, settled
from worker.spec import ImportSpec, new_import_id
from worker.store.client import TRANSIENT

from . import segment
from .options import SEGMENT_DRY_RUN, SEGMENT_KIND, check_encoding, check_file_options, check_options, delimiter_of
from .queueing import Queueing
from .source import Source
from .split import Plan, scan
from .spool import Spool

__all__ = ["Context", "ImportHandle", "check_file_options", "check_options", "default_context", "delimiter_of",
           "enqueue_import", "inspect", "retry_options", "undo_import", "Settings",
           # what a caller catches
           "BackfillError", "ConfigError", "FileProblem", "ImportNotFound", "ResultsUnavailable", "TransientError",
           "TRANSIENT"]

log = get_logger("backfill.producer")
#: The longest pause between two tries of a wait whose reads of Redis fail.
WAIT_RETRY_MAX_S = 5.0
_default: Context | None = None


def default_context(settings: Settings | None = None) -> Context:
    """The context of the calls that pass none: built once from the environment's settings, one connection
    pool (with ``settings``: a new context on them, not shared)."""
    global _default
    if settings is not None:
        return Context.open(settings)
    if _default is None or _default.settings is not get_settings():  # (read again: reset_settings)
        _default = Context.open(get_settings())
    return _default


@dataclasses.dataclass
class ImportHandle:
    """A queued (or failed) import: poll it, wait for it, read its report."""

    import_id: str
    #: the store and settings it reads with (default: :func:`default_context`)
    context: Context = dataclasses.field(default_factory=default_context, repr=False, compare=False)
    #: the chunks being queued by this process, if it queues them
    queueing: Queueing | None = dataclasses.field(default=None, repr=False, compare=False)

    def queued(self, timeout: float | None = None) -> bool:
        """Wait until this process has queued every chunk (or stopped); True when done. Raises what
        stopped the queueing (a Redis that stayed away); the import then ends as interrupted."""
        if self.queueing is None:
            return True
        return self.queueing.join(timeout)

    def stop_queueing(self) -> None:
        """Stop queueing (Ctrl-C): what was queued is imported, the import ends as interrupted."""
        if self.queueing is not None:
            self.queueing.stop()

    def state(self) -> dict[str, str]:
        """The raw stored state (counters, status); ImportNotFound when Redis does not know the import."""
        st = self.context.store
        state = st.imports.state(self.import_id)
        if not state:
            raise st.guard.unknown(self.import_id, self.context.settings.retention_s)
        return state

    @property
    def status(self) -> str:
        """accepted, queued or running while it goes on; then one of ``worker.ops.report.STATUSES``:
        completed, completed_with_errors, partially_failed, failed, cancelled or interrupted."""
        return self.state().get("status", "unknown")

    def report(self) -> dict | None:
        """The final report, or None while the import runs; with what of it the results database holds
        so far (``events_stored``; ``stored``: True once everything it wrote is there; ``late_duplicates``:
        its events the database did not store because another event held their dedupe key)."""
        return report_of(self.state())

    def events(self, **query) -> Iterator:
        """The import's events in the results database (:class:`worker.sink.stored.StoredEvent`), by time;
        ``query`` narrows them as ``backfill events`` does: person, name, since_ms, until_ms, limit."""
        from worker.sink.results import open_results
        from worker.sink.stored import EventQuery

        results = open_results(self.context.settings)
        try:
            results.check()
            yield from results.events(EventQuery(import_id=self.import_id, **query))
        finally:
            results.close()

    def wait(self, timeout: float | None = None, *, poll_s: float = 0.2, stored: bool = False,
             on_progress: Callable[[dict[str, str]], None] | None = None) -> dict | None:
        """Block until the report exists (returned), or ``timeout`` seconds pass (None returned). With
        ``stored``, also until everything the import wrote is in the results database (when a sink runs:
        with none, there is nothing to wait for and the report says ``stored`` False), or set aside as a
        dead letter the database refused (the report says ``stored`` False and how many: ``dead_letters``).

        Waiting survives Redis pausing or restarting: a failed read is tried again with a growing
        pause (at most :data:`WAIT_RETRY_MAX_S`), and said once in the log. A Redis that lost its data
        no longer knows the import: ImportNotFound, saying so.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        retry_s = 0.0
        while True:
            try:
                self.context.store.guard.watch()
                state = self.state()
            except TRANSIENT as exc:
                if not retry_s:
                    log.warning("Redis did not answer; still waiting for the import", error=str(exc))
                retry_s = min(max(retry_s * 2, poll_s), WAIT_RETRY_MAX_S)
                if deadline is not None and time.monotonic() + retry_s >= deadline:
                    return None
                time.sleep(retry_s)
                continue
            if retry_s:
                log.info("Redis answers again")
                retry_s = 0.0
            if state.get("report") and (not stored or settled(state) or not self._sinks()):
                return report_of(state)
            if on_progress:
                on_progress(state)
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(poll_s)

    def _sinks(self) -> int:
        try:
            return self.context.store.work.sinks()
        except Exception:  # noqa: BLE001 - a transient failure: keep waiting, the next poll asks again
            return 1

    def cancel(self) -> bool:
        """Stop the import: its producer queues no more chunks, queued chunks are skipped (their rows
        become ``cancelled`` errors), chunks in flight finish, and it ends ``cancelled`` with its report.
        False when it had already stopped or ended."""
        st = self.context.store
        stopped, due = st.imports.stop(self.import_id, "cancelled")
        if stopped == -1:
            raise st.guard.unknown(self.import_id, self.context.settings.retention_s)
        if due:
            tasks.finalize_import.apply_async((self.import_id,))
        return stopped == 1

    def exit_code(self) -> int:
        """The CLI's exit code for this import now (3 while it still runs)."""
        report = self.report()
        return EXIT_TIMEOUT if report is None else EXIT_CODES.get(report["status"], 1)

    def problems_csv(self, kind: str = "errors") -> Iterator[str]:
        """The errors (or warnings) file, as CSV text in pieces."""
        st = self.context.store
        state = self.state()
        header, dropped, delimiter = [], [], ","
        if "spec" in state:
            spec = ImportSpec.from_json(state["spec"])
            header, dropped, delimiter = list(spec.columns.header), list(spec.columns.dropped), spec.delimiter
        return problems_csv(header, dropped, st.imports.problem_runs(self.import_id, kind), kind,
                            delimiter=delimiter, width=st.imports.problems_width(self.import_id, kind),
                            not_kept=int(state.get(f"{kind}_not_kept", 0) or 0))


def report_of(state: dict[str, str]) -> dict | None:
    """The finished report held in an import's state (as read from its hash), or None while it runs."""
    raw = state.get("report")
    if not raw:
        return None
    report = orjson.loads(raw)
    stored = import_stored(state)
    if stored is not None:
        report["events_stored"] = int(state.get("events_stored", 0) or 0)
        report["stored"] = stored
        report["dead_letters"] = dead_letters(state)
        report["late_duplicates"] = int(state.get("late_duplicates", 0) or 0)
    return report


def inspect(path: str | Path, *, encoding: str | None = None, delimiter: str | None = None,
            dialect: str | None = None, identifier: str | None = None, kind: str = "events",
            mapping: dict[str, str] | None = None, skip: tuple[str, ...] = (), data_to_process: str = "all",
            settings: Settings | None = None, stdin: BinaryIO | None = None, format: str | None = None,
            keep_chunks: bool = False) -> tuple[Source, Plan]:
    """Open and scan a file as an import would, without Redis; raises FileProblem (ConfigError for
    a bad option). ``format``: "csv", "segment" (Segment messages, :mod:`producers.segment`), or None:
    Segment for a .ndjson/.jsonl/.json name or a file that opens a JSON object or array. ``keep_chunks``:
    keep a CSV file's chunks while scanning it (:mod:`producers.spool`)."""
    settings = settings or get_settings()
    people = {"mapping": mapping or {}, "skip": tuple(skip), "data_to_process": data_to_process} \
        if kind == "people" else None
    chosen = delimiter_of(delimiter)
    if encoding:
        check_encoding(encoding)
    source = Source.open(path, stdin=stdin)
    try:
        if segment.chosen(str(path), format, source):
            if kind != "events":
                raise ConfigError(SEGMENT_KIND)
            return source, segment.scan(source)
        plan = scan(source, encoding=encoding, delimiter=chosen, dialect=dialect,
                    identifier=identifier, max_columns=settings.max_columns, people=people,
                    mapping=None if people else mapping, skip=() if people else tuple(skip),
                    spool=Spool.for_settings(settings) if keep_chunks else None)
    except BaseException:
        source.close()
        raise
    return source, plan


def _finished_report(context: Context, import_id: str) -> dict:
    """The report of a finished import; ImportNotFound, or ConfigError while it runs."""
    st = context.store
    state = st.imports.state(import_id)
    if not state:
        raise st.guard.unknown(import_id, context.settings.retention_s)
    if not state.get("report"):
        raise ConfigError(f"import {import_id} has not finished ({state.get('status')}): retry it once it has")
    return orjson.loads(state["report"])


def retry_options(import_id: str, *, context: Context | None = None) -> dict:
    """The keyword arguments of :func:`enqueue_import` for a retry of ``import_id``: its options as they
    were given (the encoding and delimiter are sniffed again: the errors file backfill writes is UTF-8),
    and ``retry_of``. Raises ImportNotFound, or ConfigError while the import runs or for an import
    recorded before its options were kept."""
    context = context or default_context()
    st = context.store
    report = _finished_report(context, import_id)
    if not (report.get("combined") or report).get("errors"):
        raise ConfigError(f"import {import_id} has no failed rows to retry")
    raw = st.imports.state(import_id).get("options")
    if not raw:
        raise ConfigError(f"import {import_id} was refused before it was read, or recorded before retries "
                          "existed: import the corrected file as a new import")
    return {**orjson.loads(raw), "retry_of": import_id}


def undo_import(import_id: str, settings: Settings | None = None, *, context: Context | None = None) -> dict:
    """Take back a finished events import (:func:`worker.ops.undo.undo_import`): what was done. Raises
    ImportNotFound, or ConfigError when it cannot be undone."""
    from worker.ops.undo import undo_import as undo

    context = context or default_context(settings)
    return undo(context.store, import_id, context.settings)


def enqueue_import(
    path: str | Path,
    *,
    kind: str = "events",
    identifier: str | None = None,
    dialect: str | None = None,
    data_to_process: str = "all",
    empty_cells: str = "ignore",
    mapping: dict[str, str] | None = None,
    skip: tuple[str, ...] | list[str] = (),
    trigger: bool = False,
    trigger_window: str | int | None = "72h",
    timezone: str = "UTC",
    dst: str | None = None,
    create_people: bool = False,
    dry_run: bool = False,
    encoding: str | None = None,
    delimiter: str | None = None,
    date_formats: tuple[str, ...] | list[str] = (),
    stdin: BinaryIO | None = None,
    settings: Settings | None = None,
    context: Context | None = None,
    on_chunk: Callable[[int], None] | None = None,
    background: bool = True,
    import_id: str | None = None,
    source: str | None = None,
    retry_of: str | None = None,
    format: str | None = None,
) -> ImportHandle:
    """Scan ``path`` (the whole file: file-level problems are found before anything is queued), record
    the import, and return a handle while its chunks are queued in a thread of its own (the process
    stays up until they are; ``handle.queued()`` waits for it, ``handle.stop_queueing()`` ends it as
    interrupted). ``background=False`` queues before returning.

    ``kind="people"`` imports people (Customer.io's rules): ``identifier`` id, email or
    cio_id; ``data_to_process`` all, only_new or only_existing; ``empty_cells`` ignore
    or clear. ``mapping`` {column: attribute} renames columns (events: {column: role}, a
    role being email, id, event_name, time or event_id, anything else a property name);
    ``skip`` lists columns to leave out. ``date_formats``: strptime patterns (or
    ``"excel"``) read besides ISO 8601 and Unix times; ``dst``: "earlier" or "later", as ``--dst``.

    A file-level problem (not CSV, no person column, bad quoting...) does not
    raise: the import is recorded as ``failed`` with one clear message, its report
    written, and nothing queued. ``handle.report()["failure"]`` says why.
    Invalid options raise ConfigError.

    ``import_id``: an id reserved beforehand (the HTTP service answers with it before the file is
    scanned); ``source``: how reports name the file (default: ``path``); ``retry_of``: the finished
    import whose failed rows this file holds, corrected (see :func:`retry_options`): the report then
    also gives the outcome of both. ``format``: "csv", "segment" or None (see :func:`inspect`): a file
    of Segment messages is one import of people and events (:mod:`worker.segment.plan`), no dry run.
    ``context``: the store and settings to use (:mod:`worker.context`; default: :func:`default_context`
    of ``settings``).
    """
    context = context or default_context(settings)
    settings = context.settings
    formats, window = check_options(kind=kind, data_to_process=data_to_process, empty_cells=empty_cells,
                                    date_formats=date_formats, timezone=timezone, dst=dst,
                                    trigger_window=trigger_window, delimiter=delimiter, encoding=encoding,
                                    mapping=mapping, skip=skip, source=source or str(path), trigger=trigger,
                                    create_people=create_people)
    id_only = settings.workspace_identifiers == "id_only"
    st = context.store
    st.guard.check(force=True)  # RedisMisconfigured for a Redis that evicts keys: nothing is recorded
    if retry_of is not None:
        _finished_report(context, retry_of)
    import_id = import_id or new_import_id()
    handle = ImportHandle(import_id, context)
    # As given, for a retry to give them again (retry_options).
    given = {"kind": kind, "identifier": identifier, "dialect": dialect, "data_to_process": data_to_process,
             "empty_cells": empty_cells, "mapping": mapping or {}, "skip": list(skip), "trigger": trigger,
             "trigger_window": trigger_window, "timezone": timezone, "dst": dst, "create_people": create_people,
             "dry_run": dry_run, "date_formats": list(date_formats), "format": format}
    label = source or str(path)
    started_ms = int(time.time() * 1000)
    with bind_chunk(import_id):
        try:
            opened, plan = inspect(path, encoding=encoding, delimiter=delimiter, dialect=dialect,
                                   identifier=identifier, kind=kind, mapping=mapping, skip=tuple(skip),
                                   data_to_process=data_to_process, settings=settings, stdin=stdin,
                                   format=format, keep_chunks=True)
            if plan.columns.dialect == "segment":
                kind, create_people = "segment", True
                if dry_run:
                    opened.close()
                    raise ConfigError(SEGMENT_DRY_RUN)
            if kind == "events" and create_people and id_only and plan.identifier == "email":
                opened.close()
                raise FileProblem("cannot_create_by_email", "this workspace adds people by id only "
                                  "(BACKFILL_WORKSPACE_IDENTIFIERS=id_only): --create-people needs a file of ids")
        except FileProblem as problem:
            # named as the caller named it (an upload's server-side path means nothing to its sender)
            reason = str(problem).replace(str(path), label)
            if st.imports.refuse(import_id, label, problem.code, reason):  # (not once cancelled while accepted)
                log.warning("import refused", source=label, code=problem.code, reason=reason)
                tasks.run_finalize(st, import_id, settings)
            return handle
        try:
            spec = ImportSpec(
                import_id=import_id, columns=plan.columns, identifier=plan.identifier, kind=kind,
                data_to_process=data_to_process, empty_cells=empty_cells, id_only=id_only,
                source=label, trigger=trigger and kind != "people", trigger_window_s=window, timezone=timezone,
                create_people=create_people, dry_run=dry_run, dedupe_window_s=settings.dedupe_window_s,
                date_formats=formats, dst=dst, encoding=plan.sniffed.encoding, delimiter=plan.sniffed.delimiter,
            )
            if not st.imports.create(spec, {
                "source": label, "rows_expected": plan.rows, "blank_rows": plan.blank,
                "encoding_reason": plan.sniffed.encoding_reason, "started_ms": started_ms,
                "options": orjson.dumps(given), **({"retry_of": retry_of} if retry_of else {}),
            }, settings.retention_s):
                opened.close()  # cancelled while the service held it accepted: that stop wrote its report
                return handle
            if retry_of:
                st.imports.note_retry(retry_of, import_id)
        except BaseException:
            opened.close()
            raise
        log.info("import queued", source=label, kind=kind, rows=plan.rows, dialect=plan.columns.dialect,
                 identifier=plan.identifier, encoding=plan.sniffed.encoding, dry_run=dry_run)
    handle.queueing = Queueing(st, tasks, opened, plan, import_id, settings, on_chunk)
    handle.queueing.start(background)
    return handle
