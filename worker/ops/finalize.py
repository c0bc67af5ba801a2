"""Finishing an import: its report, written once, then its notification.

:func:`finalize` builds the report from the import's counters (:mod:`worker.ops.report`)
and writes it once (finalize.lua, which makes the notification pending work in the same
step); the run that wrote it queues the notification (:mod:`worker.ops.notify`: the
``import finished`` line and the webhook), its own task, so a slow endpoint never holds
the report and a worker that dies in between loses nothing (the sweeper sends it again).
"""
from __future__ import annotations

from collections.abc import Callable

import orjson

from worker.errors import PermanentError
from worker.ops.report import build_report, combine
from worker.settings import Settings
from worker.store import Store
from worker.store.work import unknown_import


def spec_info(st: Store, import_id: str) -> dict:
    """The report's description of the import's options."""
    try:
        spec = st.imports.spec(import_id)
    except PermanentError:
        return {"import_id": import_id}
    return {
        "import_id": import_id, "source": spec.source, "kind": spec.kind, "dialect": spec.columns.dialect,
        "identifier": spec.identifier, "trigger": spec.trigger, "trigger_window_s": spec.trigger_window_s,
        "dry_run": spec.dry_run, "create_people": spec.create_people, "encoding": spec.encoding,
        "delimiter": spec.delimiter, "timezone": spec.timezone, **({"dst": spec.dst} if spec.dst else {}),
        "column_warnings": list(spec.columns.notes),
        **({"data_to_process": spec.data_to_process, "empty_cells": spec.empty_cells, "id_only": spec.id_only}
           if spec.kind == "people" else {}),
    }


def finalize(st: Store, import_id: str, settings: Settings, send_notify: Callable[[str], None]) -> dict | None:
    """Write the report once and queue its notification; None when another run already did. Raises
    ImportNotFound for an import Redis does not know (lost with its data, or expired)."""
    info = spec_info(st, import_id)
    while True:
        state = st.imports.state(import_id)
        if not state:
            raise unknown_import(import_id)
        report = build_report(state, info)
        original = st.imports.state(state["retry_of"]).get("report") if state.get("retry_of") else None
        if original:  # a retry of an import's failed rows: the outcome of both too
            report["retry_of"] = state["retry_of"]
            report["combined"] = combine(orjson.loads(original), report)
        wrote = st.imports.finalize(import_id, report["status"], report, settings.retention_s,
                                    record=not info.get("dry_run"), adopted=int(state.get("adopted") or 0))
        if wrote is not None:  # (None: an undo of another import left events to this one meanwhile)
            break
    if not wrote:
        return None
    send_notify(import_id)
    return report
