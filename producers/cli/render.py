"""How the CLI prints a report and an import's progress (text for people; --json elsewhere)."""
from __future__ import annotations

import sys
import time
from typing import Any

import click

#: How the report names each kind of trigger decision (the web console uses the same words).
TRIGGER_LABELS = {
    "passive": "passive (trigger off)", "sent_now": "sent now", "scheduled": "scheduled",
    "discarded": "discarded (delay already passed)", "outside_window": "outside the trigger window",
    "future": "future-dated (never triggers)", "no_campaign": "no campaign on that event",
}


def report_lines(report: dict) -> list[str]:
    """The report as the terminal shows it, line by line (the web console shows the same lines)."""
    lines: list[str] = []
    title = "DRY RUN (nothing written) " if report.get("dry_run") else ""
    lines.append(f"{title}import {report['import_id']}: {report['status']}")
    if report.get("source"):
        lines.append(f"  file              {report['source']}")
    if report.get("failure"):
        lines.append(f"  failure           {report['failure']}")
        return lines
    if report.get("encoding"):
        reason = report.get("encoding_reason")
        lines.append(f"  read as           {report['encoding']}" + (f" ({reason})" if reason else ""))
    blank = report.get("blank_rows_skipped")
    lines.append(f"  rows              {report['rows']}" + (f" ({blank} blank rows skipped)" if blank else ""))
    lines.append(f"  imported          {report['imported']}")
    lines.append(f"  duplicates        {report['duplicates']}")
    lines.append(f"  errors            {report['errors']}")
    lines.append(f"  warnings          {report['warnings']}")
    lines.append(f"  people created    {report['people_created']}")
    if "rows_not_queued" in report:
        lines.append(f"  not queued        {report['rows_not_queued']} rows (queueing stopped after row "
                   f"{report['last_row_queued']})")
        if report.get("rows_cancelled"):
            lines.append(f"  skipped           {report['rows_cancelled']} queued rows (errors, code cancelled)")
        if report.get("resume"):
            lines.append(f"  to complete it    {report['resume']}")
    if report.get("chunks_lost"):
        lines.append(f"  chunks lost       {report['chunks_lost']}, {report['rows_lost']} rows (gone before a worker read "
                   f"them: Redis rolled back by a host crash, or expired); to complete it: {report['resume']}")
    if report.get("chunks_failed", 0) > report.get("chunks_lost", 0):
        lines.append(f"  chunks failed     {report['chunks_failed'] - report.get('chunks_lost', 0)} (not processed: "
                   "their rows are in the errors file)")
    if report.get("kind") == "people":
        lines.append(f"  people updated    {report['people_updated']}")
        if report.get("people_skipped"):
            lines.append(f"  skipped           {report['people_skipped']} (already exist; counted as duplicates)")
    if report.get("anonymous_stored") or report.get("anonymous_merged"):
        lines.append(f"  anonymous         {report['anonymous_stored']} events held for an anonymous id (counted as "
                   f"imported), {report['anonymous_merged']} moved to the people an identify or alias named")
    if report.get("combined"):
        both = report["combined"]
        lines.append(f"  retry of          {report['retry_of']}: together {both['status']}, {both['rows']} rows, "
                   f"{both['imported']} imported, {both['duplicates']} duplicates, {both['errors']} errors")
    for note in report.get("column_warnings", []):
        lines.append(f"  column warning    {note}")
    triggers = {k: v for k, v in report.get("triggers", {}).items() if v}
    if triggers:
        lines.append("  triggers")
        for name, count in triggers.items():
            lines.append(f"    {TRIGGER_LABELS.get(name, name):<34}{count}")
        for campaign, kinds in report.get("triggers_by_campaign", {}).items():
            counts = ", ".join(f"{kind.replace('_', ' ')} {n}" for kind, n in kinds.items())
            lines.append(f"    {campaign}: {counts}")
    if "events_stored" in report:
        held = "all of it" if report["stored"] else "not all yet: a sink is still writing it (or none runs)"
        if report.get("dead_letters"):
            held = (f"not all: {report['dead_letters']} outbox entr{'y' if report['dead_letters'] == 1 else 'ies'} "
                    "refused by the database, set aside as dead letters: fix the cause, then backfill sink --retry-dead")
        what = "the import" if report.get("kind") == "people" else f"{report['events_stored']} events"
        lines.append(f"  stored            {what} in the results database ({held})")
        if report.get("late_duplicates"):
            lines.append(f"  late duplicates   {report['late_duplicates']} events not stored: the database already held "
                       "their event id or content (Redis had lost its dedupe marks: a host crash rolled it back)")
    rate = report.get("rows_per_second")
    lines.append(f"  time              {report['seconds']} s" + (f" ({rate} rows/s)" if rate else ""))
    for kind in ("errors", "warnings"):
        if report[kind]:
            cut = report.get(f"{kind}_not_kept")
            lines.append(f"  {kind + ' file':<18}backfill {kind} {report['import_id']} -o {kind}.csv"
                       + (f" ({cut} {kind} not kept: BACKFILL_MAX_PROBLEM_ROWS)" if cut else ""))
    return lines


def print_report(report: dict) -> None:
    """The report as the terminal shows it."""
    for line in report_lines(report):
        click.echo(line)


#: seconds with chunks queued and none committed before ``--wait`` says how to start a worker
WORKER_HINT_S = 10.0


def progress_printer(import_id: str, *, tty: bool | None = None, clock=time.monotonic, out=None):
    """A callback for ImportHandle.wait: one progress line, redrawn on a terminal.

    Not on a terminal (a log, a pipe), a line is printed when what it says changes (at most every 5 s)
    and otherwise every 30 s, never the same line twice a second. When no chunk has been committed
    10 s after the first chunk was queued, it says once how to start a worker.
    Rows/s and the ETA are counted from the import's first commit (:func:`watch.progress`), so the
    first lines are right; before any commit the line says how many chunks are queued.
    """
    from producers.cli import watch

    tty = sys.stderr.isatty() if tty is None else tty
    echo = out or (lambda text, nl: click.echo(text, err=True, nl=nl))
    last: dict[str, Any] = {"at": -1e9, "said": None, "queued_at": None, "hinted": False}

    def show(state: dict[str, str]) -> None:
        now = clock()
        p = watch.progress(import_id, state, int(time.time() * 1000))
        rates = ""
        if state.get("report"):
            line = f"{p['stored']}/{p['imported']} events stored, waiting for the sink"
        elif state.get("waiting"):
            line = f"{p['rows']}/{p['rows_expected']} rows; waiting {state['waiting']}"
        elif not p["rows"]:
            queued = int(state.get("chunks_queued", 0) or 0)
            line = (f"queued {queued} chunk{'s' if queued != 1 else ''} of {p['rows_expected']} rows, waiting for a worker"
                    if queued else f"queueing {p['rows_expected']} rows")
            if queued and last["queued_at"] is None:
                last["queued_at"] = now
        else:
            eta = f", ETA {p['eta_s']} s" if p["eta_s"] is not None else ""
            line = f"{p['rows']}/{p['rows_expected']} rows, {p['errors']} errors"
            rates = f", {p['rows_per_second']} rows/s{eta}"
        if (not p["rows"] and not state.get("report") and not last["hinted"] and last["queued_at"] is not None
                and now - last["queued_at"] >= WORKER_HINT_S):
            last["hinted"] = True
            echo(("\n" if tty else "") + f"no worker has taken a chunk in {WORKER_HINT_S:.0f} s: start one with "
                 "`backfill worker` (here, or on any machine with the same REDIS_URL)", True)
        if tty:
            if now - last["at"] >= 0.2:
                last["at"] = now
                echo("\r" + line + rates + "   ", False)
            return
        # what the line says, less its rates: a change in it is news, a change in the rate alone is not
        if (line != last["said"] and now - last["at"] >= 5.0) or now - last["at"] >= 30.0:
            last["at"], last["said"] = now, line
            echo(line + rates, True)

    return show
