"""Finishing an import: its report, written once, and the line that announces it.

:func:`finalize` builds the report from the import's counters (:mod:`worker.ops.report`)
and writes it once (finalize.lua); the run that wrote it logs ``import finished`` and
asks for the webhook, which runs as its own task so a slow endpoint never holds the report.
"""
from __future__ import annotations

from collections.abc import Callable

from worker.errors import PermanentError
from worker.logs import bind_chunk, get_logger
from worker.ops import notify
from worker.ops.report import build_report
from worker.settings import Settings
from worker.store import Store

log = get_logger("backfill.worker")


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
        "delimiter": spec.delimiter, "timezone": spec.timezone,
        **({"data_to_process": spec.data_to_process, "empty_cells": spec.empty_cells, "id_only": spec.id_only,
            "column_warnings": list(spec.columns.notes)} if spec.kind == "people" else {}),
    }


def finalize(st: Store, import_id: str, settings: Settings,
             send_webhook: Callable[[str], None] | None = None) -> dict | None:
    """Write the report once and announce it; None when another run already did."""
    report = build_report(st.imports.state(import_id), spec_info(st, import_id))
    if not st.imports.finalize(import_id, report["status"], report, settings.retention_s):
        return None
    with bind_chunk(import_id):
        log.info("import finished", **notify.log_fields(report))
    if settings.webhook_url and send_webhook is not None:
        send_webhook(import_id)
    return report
