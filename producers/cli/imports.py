"""``backfill import`` and ``backfill inspect``: reading a file, and queueing it."""
from __future__ import annotations

import sys

import click

from producers.cli import render
from producers.cli.common import cli_context, cli_settings, echo_json
from worker.clocks import DST_CHOICES
from worker.errors import BackfillError, ConfigError, FileProblem, ImportNotFound
from worker.events.dialects import DIALECTS
from worker.ops.report import EXIT_TIMEOUT
from worker.people.columns import (
    DATA_TO_PROCESS,
    EMPTY_CELLS,
    IDENTIFIERS,
    parse_mapping,
)

FORMAT = click.option("--format", "file_format", type=click.Choice(["auto", "csv", "segment"]), default="auto",
                      show_default=True, help="segment: Segment messages, one JSON message a line (.ndjson, "
                      ".jsonl, .json, gzipped or not), a JSON array or {\"batch\": [...]}; auto: by the name "
                      "and the first character.")


@click.command("import")
@click.argument("file")
@click.option("--type", "kind", type=click.Choice(["events", "people"]), default="events", show_default=True)
@FORMAT
@click.option("--identifier", type=click.Choice(IDENTIFIERS),
              help="Events: what the person column holds. People: what people are looked up by "
                   "(cio_id: updates only, and may change ids and e-mails). Default: detected.")
@click.option("--data-to-process", type=click.Choice(DATA_TO_PROCESS), default="all",
              show_default=True, help="People: add and update, add only, or update only.")
@click.option("--empty-cells", type=click.Choice(EMPTY_CELLS), default="ignore", show_default=True,
              help="People: an empty cell leaves the attribute as it is, or removes it.")
@click.option("--map", "mapping", multiple=True, metavar="COLUMN=NAME",
              help="Read COLUMN as NAME: people, an attribute (Mail=email); events, a role (email, id, "
                   "event_name, time, event_id) or a property name. Repeatable.")
@click.option("--skip", multiple=True, metavar="COLUMN", help="Leave COLUMN out; repeatable.")
@click.option("--date-format", "date_formats", multiple=True, metavar="PATTERN",
              help="Also read times written like PATTERN (strptime: '%m/%d/%Y %H:%M'), or 'excel' for Excel "
                   "date serials; repeatable (a value two patterns read differently is an error).")
@click.option("--dialect", type=click.Choice(DIALECTS), help="Force the dialect (default: from the header).")
@click.option("--trigger/--no-trigger", default=False, help="Let events trigger campaigns (default: passive).")
@click.option("--trigger-window", default="72h", show_default=True, help="Oldest event that may trigger: 72h, 10d, or none.")
@click.option("--timezone", default="UTC", show_default=True, help="Zone of times written without an offset.")
@click.option("--dst", type=click.Choice(DST_CHOICES),
              help="A local time the zone's clocks repeat (01:30 on the autumn change) is its earlier or its "
                   "later instant. Default: an error naming both.")
@click.option("--create-people", is_flag=True, help="Create people the directory does not know.")
@click.option("--dry-run", is_flag=True, help="Run everything, write nothing, report what would happen.")
@click.option("--encoding", help="Force the encoding: cp1252, latin-1, mac_roman (Excel for Mac), cp850 (DOS)... "
              "(default: UTF-8, else cp1252).")
@click.option("--delimiter", help="Force the delimiter: a character, or tab (default: sniffed among , ; tab |).")
@click.option("--wait", is_flag=True, help="Wait for the report and for the results database to hold the import "
              "(when a sink runs); exit 0, 4 (row errors), 1 (failed), 5 (cancelled or interrupted), 3 (timeout).")
@click.option("--timeout", type=float, help="With --wait: give up waiting after this many seconds (exit 3).")
@click.option("--json", "as_json", is_flag=True, help="Print the report (or the id) as JSON.")
def import_(file: str, kind: str, file_format: str, identifier, data_to_process, empty_cells, mapping, skip,
            date_formats, dialect, trigger, trigger_window, timezone, dst, create_people, dry_run, encoding, delimiter,
            wait, timeout, as_json) -> None:
    """Import FILE (a path, a .gz, or - for standard input) of events or people, or of Segment messages."""
    from producers.api import enqueue_import

    if kind == "events" and identifier == "cio_id":
        raise click.BadParameter("cio_id identifies people in a people import (--type people)",
                                 param_hint="--identifier")
    try:
        people = dict(data_to_process=data_to_process, empty_cells=empty_cells) if kind == "people" else {}
        handle = enqueue_import(
            file, kind=kind, **people, mapping=parse_mapping(mapping), skip=skip, identifier=identifier,
            dialect=dialect, trigger=trigger, trigger_window=trigger_window, date_formats=date_formats,
            timezone=timezone, dst=dst, create_people=create_people, dry_run=dry_run, encoding=encoding,
            delimiter=delimiter, format=file_format, context=cli_context(),
        )
    except (ValueError, ConfigError) as exc:  # an option is wrong: bad usage
        raise click.UsageError(str(exc)) from None
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from None
    _follow(handle, wait, timeout, as_json)


@click.command()
@click.argument("import_id")
@click.argument("file")
@click.option("--wait", is_flag=True, help="Wait for the report (and for the results database to hold it).")
@click.option("--timeout", type=float, help="With --wait: give up waiting after this many seconds (exit 3).")
@click.option("--json", "as_json", is_flag=True, help="Print the report (or the id) as JSON.")
def retry(import_id: str, file: str, wait: bool, timeout: float | None, as_json: bool) -> None:
    """Import FILE, IMPORT_ID's failed rows corrected (its errors file, `backfill errors IMPORT_ID`, fixed),
    with the options IMPORT_ID was given. The report also gives the outcome of both (``combined``)."""
    from producers.api import enqueue_import, retry_options

    try:
        handle = enqueue_import(file, **retry_options(import_id, context=cli_context()), context=cli_context())
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from None
    _follow(handle, wait, timeout, as_json)


def _follow(handle, wait: bool, timeout: float | None, as_json: bool) -> None:
    """What ``import`` and ``retry`` print once the file is queued (or refused), and their exit code."""
    report = handle.report()
    if report and report["status"] == "failed":
        if as_json:
            echo_json(report)
        else:
            click.echo(f"import {handle.import_id} failed: {report['failure']}", err=True)
        sys.exit(1)
    try:
        if not wait:
            echo_json({"import_id": handle.import_id, "status": handle.status}) if as_json \
                else click.echo(handle.import_id)
            _queued(handle)
            return
        report = handle.wait(timeout, stored=True,
                             on_progress=None if as_json else render.progress_printer(handle.import_id))
        _queued(handle)
    except ImportNotFound as exc:  # Redis lost its data (and the import with it) while this waited
        handle.stop_queueing()
        if not as_json and sys.stderr.isatty():
            click.echo("", err=True)
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        # Ctrl-C: what was queued is imported; the import ends as interrupted, with its report.
        handle.stop_queueing()
        _queued(handle)
        click.echo(f"\nimport {handle.import_id}: stopped queueing; it ends as interrupted with what was queued "
                   f"(backfill status {handle.import_id})", err=True)
        sys.exit(130)
    if not as_json and sys.stderr.isatty():
        click.echo("", err=True)
    if report is None:
        state = handle.state()
        if state.get("report"):
            click.echo(f"import {handle.import_id} finished ({state.get('status')}), but after {timeout} s the results "
                       "database does not hold all of it yet: is a sink running? (backfill top)", err=True)
        else:
            idle = "" if int(state.get("rows", 0) or 0) else "; no chunk committed yet: is a worker running?"
            click.echo(f"import {handle.import_id} still running after {timeout} s{idle}", err=True)
        sys.exit(EXIT_TIMEOUT)
    echo_json(report) if as_json else render.print_report(report)
    sys.exit(handle.exit_code())


def _queued(handle) -> None:
    """Wait until this process has queued the whole file; a queueing that failed is exit 1."""
    try:
        handle.queued()
    except Exception as exc:  # noqa: BLE001 - said in one line: the import ends as interrupted
        raise click.ClickException(f"import {handle.import_id}: queueing stopped ({exc}); it ends as "
                                   "interrupted with what was queued") from None


@click.command("inspect")
@click.argument("file")
@click.option("--type", "kind", type=click.Choice(["events", "people"]), default="events", show_default=True)
@FORMAT
@click.option("--identifier", type=click.Choice(IDENTIFIERS))
@click.option("--dialect", type=click.Choice(DIALECTS))
@click.option("--map", "mapping", multiple=True, metavar="COLUMN=NAME", help="As for import.")
@click.option("--skip", multiple=True, metavar="COLUMN", help="As for import.")
@click.option("--encoding")
@click.option("--delimiter", help="A character, or tab.")
@click.option("--json", "as_json", is_flag=True)
def inspect_(file: str, kind, file_format, identifier, dialect, mapping, skip, encoding, delimiter, as_json) -> None:
    """Show how FILE would be read, without importing anything (no Redis needed)."""
    from producers.api import inspect
    from producers.preview import describe

    try:
        source, plan = inspect(file, identifier=identifier, dialect=dialect, encoding=encoding,
                               delimiter=delimiter, kind=kind, mapping=parse_mapping(mapping), skip=skip,
                               format=file_format, settings=cli_settings())
    except (ValueError, ConfigError) as exc:
        raise click.UsageError(str(exc)) from None
    except FileProblem as problem:
        raise click.ClickException(f"{problem} [{problem.code}]") from None
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from None
    source.close()
    columns = plan.columns
    info = describe(file, plan)
    if as_json:
        echo_json(info)
        return
    shown = {"\t": "tab"}.get(plan.sniffed.delimiter, plan.sniffed.delimiter)
    click.echo(f"file        {file}")
    click.echo(f"encoding    {plan.sniffed.encoding} ({plan.sniffed.encoding_reason})")
    click.echo(f"delimiter   {shown}")
    if columns.dialect == "segment":
        click.echo("dialect     segment: one import of people and events (the Vero destination's rules)")
    else:
        click.echo(f"dialect     {columns.dialect}, people by {plan.identifier}" if kind == "events"
                   else f"people      looked up by {plan.identifier}")
    click.echo(f"rows        {plan.rows}" + (f" ({plan.blank} blank skipped)" if plan.blank else ""))
    click.echo("columns")
    for col in info["columns"]:
        values = ", ".join(repr(v) for v in col["first_values"])
        click.echo(f"  {col['column']:<3} {col['name']!r:<24} {col['role']:<12} {values}")
    for note in columns.notes:
        click.echo(f"warning: {note}")




@click.command()
@click.argument("import_id")
@click.option("--wait", is_flag=True, help="Wait for the report (exit 5 once cancelled).")
@click.option("--timeout", type=float, help="With --wait: give up waiting after this many seconds (exit 3).")
def cancel(import_id: str, wait: bool, timeout: float | None) -> None:
    """Cancel an import: no more chunks are queued, queued ones are skipped (their rows are `cancelled`
    errors, to import again), chunks in flight finish; it ends `cancelled` with its report."""
    from producers.cli.common import handle_of

    handle = handle_of(import_id)
    try:
        stopped = handle.cancel()
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from None
    if not stopped:
        click.echo(f"import {import_id} had already ended or stopped: {handle.status}", err=True)
    else:
        click.echo(f"import {import_id}: cancelling (chunks in flight finish, the rest are skipped)", err=True)
    if wait:
        report = handle.wait(timeout)
        if report is None:
            click.echo(f"import {import_id} still running after {timeout} s", err=True)
            sys.exit(EXIT_TIMEOUT)
        render.print_report(report)
        sys.exit(handle.exit_code())


@click.command()
@click.argument("import_id")
@click.option("--json", "as_json", is_flag=True)
def undo(import_id: str, as_json: bool) -> None:
    """Take back a finished events import: its events (in the outbox and the results database), its
    dedupe marks (the same file imports everything again), its triggers not yet sent, the people it
    created that nothing else names; triggers sent are listed. Its events a later import also brought
    stay, as that import's. Recorded: asked again, it says what it did."""
    from producers.api import undo_import

    try:
        done = undo_import(import_id, context=cli_context())
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(done)
        return
    again = " (already undone: nothing more done)" if done.get("already") else ""
    click.echo(f"import {import_id} undone{again}: {done['events_deleted']} events deleted from the results "
               f"database, {done['marks_removed']} dedupe marks removed, {done['triggers_unscheduled']} scheduled "
               f"triggers removed, {done['decisions_deleted']} trigger decisions deleted, "
               f"{done['people_deleted']} people it created deleted"
               + (f"; {done['people_kept']} kept: {done['people_kept_why']}" if done["people_kept"] else ""))
    if done.get("events_kept"):
        click.echo(f"  {done['events_kept']} of its events stay, brought again by later imports (counted there as "
                   "duplicates, now imported): " + ", ".join(f"{i} ({n})" for i, n in done["kept_by"].items()))
    for sent in done["sent"]:
        click.echo(f"  already sent, not taken back: {sent['campaign']} to {sent['person']} ({sent['delivery_id']})")
