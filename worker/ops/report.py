"""An import's report, and its problem rows as a CSV a spreadsheet can open safely. Pure."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from worker.cells import escape_cell, shorten
from worker.events.rules import OUTCOMES

#: Final statuses, and the ``backfill import --wait`` exit code of each. "cancelled": ``backfill cancel``
#: stopped it; "interrupted": its producer stopped before queueing every row (killed, Redis lost the
#: end of its work) and the sweeper ended it; both report what was committed and what was not queued.
EXIT_CODES = {"completed": 0, "completed_with_errors": 4, "partially_failed": 4, "failed": 1,
              "cancelled": 5, "interrupted": 5}
STATUSES = tuple(EXIT_CODES)
EXIT_TIMEOUT = 3
_COUNTERS = ("rows", "imported", "duplicates", "errors", "warnings", "people_created")
#: The import hash's field ``kept_from:<id>``: events this import counted as duplicates of import <id>'s,
#: kept as its own when <id> was undone (see worker/ops/undo.py).
KEPT_FROM = "kept_from:"
#: A campaign's counts in the report, in this order (what happens soonest first).
_ACTION_ORDER = ("sent_now", "scheduled", "discarded", "outside_window", "future")


def build_report(state: dict[str, str], spec_info: dict[str, Any]) -> dict[str, Any]:
    """The summary of a finished import, from its counters."""
    counts = {name: int(state.get(name, 0) or 0) for name in _COUNTERS}
    triggers = {name: int(state.get(f"trig_{name}", 0) or 0) for name in OUTCOMES}
    chunks_failed = int(state.get("chunks_failed", 0) or 0)
    cancelled_rows = int(state.get("rows_cancelled", 0) or 0)
    expected = int(state.get("rows_expected", 0) or 0)
    not_queued = max(expected - counts["rows"], 0)
    stop = state.get("stop", "")
    #: stopped while the service held it accepted: its file was never scanned, nothing of it queued
    unscanned = stop and "spec" not in state
    if state.get("failure"):
        status = "failed"
    elif stop == "cancelled" or (stop == "interrupted" and (not_queued or unscanned)):
        status = stop  # (a producer that stopped after queueing every row lost only its last word)
    elif chunks_failed:
        status = "partially_failed"  # some chunks could not be processed: their rows are chunk_* errors
    elif counts["errors"]:
        status = "completed_with_errors"
    else:
        status = "completed"
    # From the start of the producer's scan (when known) to the last commit.
    created = int(state.get("started_ms", 0) or state.get("created_ms", 0) or 0)
    finished = int(state.get("last_commit_ms", 0) or created)
    seconds = max(finished - created, 0) / 1000
    report = {
        "status": status,
        **spec_info,
        **counts,
        "rows_expected": expected,
        "blank_rows_skipped": int(state.get("blank_rows", 0) or 0),
        "encoding_reason": state.get("encoding_reason", ""),
        "triggers": triggers,
        "triggers_by_campaign": by_campaign(state),
        "chunks": int(state.get("chunks_done", 0) or 0),
        "chunks_failed": chunks_failed,
        "seconds": round(seconds, 3),
        "rows_per_second": round(counts["rows"] / seconds) if seconds > 0 else None,
    }
    if stop:
        report["rows_cancelled"] = cancelled_rows
        report["rows_not_queued"] = not_queued
        last = int(state.get("last_row_queued", 0) or 0)
        report["last_row_queued"] = last
        if unscanned:
            report["resume"] = "its file was never read: import it again"
        elif not_queued or cancelled_rows:
            parts = [f"import the file's rows after row {last} again"] if not_queued else []
            parts += ["the errors file holds the rows skipped (code cancelled)"] if cancelled_rows else []
            report["resume"] = "; ".join(parts)
    lost = int(state.get("chunks_lost", 0) or 0)
    if lost:  # chunks whose rows were gone before a worker read them (a Redis rolled back by a host crash)
        report["chunks_lost"] = lost
        report["rows_lost"] = not_queued
        report["resume"] = ("import the file again: its rows imported already are found duplicates "
                            "(the rows lost were never read by a worker)")
    if spec_info.get("kind") == "segment":
        # Anonymous events: held for their anonymous id (counted in imported), and those this import's
        # identify and alias calls moved to people (held by this import or by earlier ones).
        report["anonymous_stored"] = int(state.get("anonymous_stored", 0) or 0)
        report["anonymous_merged"] = int(state.get("anonymous_merged", 0) or 0)
    if spec_info.get("kind") == "people":
        # People rows are imported as created or updated; people who exist are skipped under only_new.
        report["people_updated"] = counts["imported"] - counts["people_created"]
        report["people_skipped"] = int(state.get("people_skipped", 0) or 0)
        report.pop("triggers")
        report.pop("triggers_by_campaign")
    kept = {name[len(KEPT_FROM):]: int(n) for name, n in state.items() if name.startswith(KEPT_FROM)}
    if kept:  # events counted duplicates of an import undone since, kept as this import's (counted imported)
        report["kept_from_undone"] = kept
    for kind in ("errors", "warnings"):
        if state.get(f"{kind}_not_kept"):  # past BACKFILL_MAX_PROBLEM_ROWS: counted, not in the file
            report[f"{kind}_not_kept"] = int(state[f"{kind}_not_kept"])
    if state.get("failure"):
        report["failure"] = state["failure"]
        report["failure_code"] = state.get("failure_code", "")
    return report


def by_campaign(state: dict[str, str]) -> dict[str, dict[str, int]]:
    """The import's trigger decisions by campaign then kind (its ``tc:<kind>:<name>`` counters, commit.lua's;
    the name as the decisions' JSON holds it), non-zero counts only, campaigns by name."""
    out: dict[str, dict[str, int]] = {}
    for field, value in state.items():
        if field.startswith("tc:") and int(value or 0) > 0:
            kind, _, name = field[3:].partition(":")
            out.setdefault(json.loads(f'"{name}"'), {})[kind] = int(value)
    return {name: dict(sorted(kinds.items(), key=lambda kv: _ACTION_ORDER.index(kv[0]) if kv[0] in _ACTION_ORDER
                              else len(_ACTION_ORDER)))
            for name, kinds in sorted(out.items())}


def combine(original: dict[str, Any], retry: dict[str, Any]) -> dict[str, Any]:
    """The outcome of an import and the retry of its failed rows, as one import's (a retry of a retry
    combines with what its original already combined). Every row is counted once:
    rows = imported + duplicates + errors.

    The retry's rows beyond the original's errors are the original's good rows sent again (a retry of
    the whole corrected file) as far as the retry found them duplicates: those were counted by the
    original and are not counted again. The rest beyond the errors (rows added to the corrected file)
    count as rows of their own."""
    base = original.get("combined") or original
    beyond = max(retry["rows"] - base["errors"], 0)
    again = min(retry["duplicates"], beyond, base["imported"] + base["duplicates"])
    rows = base["rows"] + beyond - again
    imported = base["imported"] + retry["imported"]
    duplicates = base["duplicates"] + retry["duplicates"] - again
    errors = max(rows - imported - duplicates, 0)
    return {"import_ids": [*(base.get("import_ids") or [original["import_id"]]), retry["import_id"]],
            "status": "completed" if errors == 0 else "completed_with_errors",
            "rows": rows, "imported": imported, "duplicates": duplicates, "errors": errors}


def problems_csv(header: Sequence[str], dropped: Iterable[int], runs: Iterable[list[dict[str, Any]]], kind: str, *,
                 delimiter: str = ",", width: int = 0, not_kept: int = 0) -> Iterator[str]:
    """The problem rows as CSV text (in pieces): the original columns, ``_row`` and ``_errors``/``_warnings``.

    ``runs`` are the stored problem rows chunk by chunk in file order (each run is sorted here, so
    the file comes out in row order holding one chunk's rows at a time). ``width``: the most cells
    any problem row has; rows with more cells than the header keep them all, under unnamed columns,
    so the row can be fixed. Written with the input's ``delimiter``; our own ``_row``/``_errors``/
    ``_warnings`` columns of a re-imported file are left out, so the output re-imports as it is
    once corrected. Every cell, header included, goes through :func:`escape_cell`. ``not_kept``: rows past
    BACKFILL_MAX_PROBLEM_ROWS, not stored: the file ends with a row saying so, its text only in the
    ``_errors``/``_warnings`` column (a file re-imported skips it as blank: our columns are not data).
    """
    drop = set(dropped)
    names = [escape_cell(h) for i, h in enumerate(header) if i not in drop]
    extra = max(width - len(header), 0)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    buffer.write("\ufeff")  # UTF-8 BOM: Excel then shows accents right
    writer.writerow([*names, *[""] * extra, "_row", f"_{kind}"])
    full = len(header) + extra
    count = 0
    for run in runs:
        for problem in sorted(run, key=lambda p: p["row"]):
            cells = list(problem["cells"])
            cells += [""] * (full - len(cells))
            kept = [escape_cell(c) for i, c in enumerate(cells) if i not in drop]
            writer.writerow([*kept, problem["row"], escape_cell(shorten("; ".join(problem["problems"])))])
            count += 1
            if count % 1000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    if not_kept:
        label = kind[:-1]
        writer.writerow([*[""] * (len(names) + extra), "", f"{not_kept:,} more {label} row{'s' if not_kept != 1 else ''} "
                         f"not kept: an import keeps its first BACKFILL_MAX_PROBLEM_ROWS {label} rows (the report's "
                         f"counts are exact)"])
    yield buffer.getvalue()
