"""``backfill``: import CSV files of events, watch them, read their reports.

Exit codes of ``import --wait``: 0 every row imported (duplicates included),
4 finished with row errors, 1 failed (nothing imported), 3 ``--timeout`` ran
out while the import goes on. Other commands: 0 on success, 1 on error, 2 on
bad usage.
"""
from __future__ import annotations

import os
import sys
import time

import click
import orjson

from worker.errors import BackfillError, FileProblem
from worker.events.dialects import DIALECTS, column_letter
from worker.ops.report import EXIT_TIMEOUT
from worker.people.columns import (
    DATA_TO_PROCESS,
    EMPTY_CELLS,
    IDENTIFIERS,
    parse_mapping,
)

from . import render


def _echo_json(data: object) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


@click.group()
@click.version_option(package_name="backfill")
def main() -> None:
    """Import CSV files of customer events into the messaging platform's store."""


@main.command("import")
@click.argument("file")
@click.option("--type", "kind", type=click.Choice(["events", "people"]), default="events", show_default=True)
@click.option("--identifier", type=click.Choice(IDENTIFIERS),
              help="Events: what the person column holds. People: what people are looked up by "
                   "(cio_id: updates only, and may change ids and e-mails). Default: detected.")
@click.option("--data-to-process", type=click.Choice(DATA_TO_PROCESS), default="all",
              show_default=True, help="People: add and update, add only, or update only.")
@click.option("--empty-cells", type=click.Choice(EMPTY_CELLS), default="ignore", show_default=True,
              help="People: an empty cell leaves the attribute as it is, or removes it.")
@click.option("--map", "mapping", multiple=True, metavar="COLUMN=ATTRIBUTE",
              help="People: import COLUMN as ATTRIBUTE (e.g. Mail=email); repeatable.")
@click.option("--skip", multiple=True, metavar="COLUMN", help="People: leave COLUMN out; repeatable.")
@click.option("--dialect", type=click.Choice(DIALECTS), help="Force the dialect (default: from the header).")
@click.option("--trigger/--no-trigger", default=False, help="Let events trigger campaigns (default: passive).")
@click.option("--trigger-window", default="72h", show_default=True, help="Oldest event that may trigger: 72h, 10d, or none.")
@click.option("--timezone", default="UTC", show_default=True, help="Zone of times written without an offset.")
@click.option("--create-people", is_flag=True, help="Create people the directory does not know.")
@click.option("--dry-run", is_flag=True, help="Run everything, write nothing, report what would happen.")
@click.option("--encoding", help="Force the encoding (default: UTF-8, else cp1252).")
@click.option("--delimiter", help="Force the delimiter (default: sniffed among , ; tab |).")
@click.option("--wait", is_flag=True, help="Wait for the report; exit 0, 4 (row errors), 1 (failed), 3 (timeout).")
@click.option("--timeout", type=float, help="With --wait: give up waiting after this many seconds (exit 3).")
@click.option("--json", "as_json", is_flag=True, help="Print the report (or the id) as JSON.")
def import_(file: str, kind: str, identifier, data_to_process, empty_cells, mapping, skip, dialect, trigger,
            trigger_window, timezone, create_people, dry_run, encoding, delimiter, wait, timeout, as_json) -> None:
    """Import FILE (a path, a .gz, or - for standard input) of events or people."""
    from .api import enqueue_import

    if kind == "events" and identifier == "cio_id":
        raise click.BadParameter("cio_id identifies people in a people import (--type people)",
                                 param_hint="--identifier")
    try:
        people = dict(data_to_process=data_to_process, empty_cells=empty_cells, mapping=parse_mapping(mapping),
                      skip=skip) if kind == "people" else {}
        handle = enqueue_import(
            file, kind=kind, **people, identifier=identifier, dialect=dialect, trigger=trigger,
            trigger_window=trigger_window,
            timezone=timezone, create_people=create_people, dry_run=dry_run, encoding=encoding,
            delimiter=delimiter.replace("\\t", "\t") if delimiter else None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from None
    report = handle.report()
    if report and report["status"] == "failed":
        if as_json:
            _echo_json(report)
        else:
            click.echo(f"import {handle.import_id} failed: {report['failure']}", err=True)
        sys.exit(1)
    if not wait:
        _echo_json({"import_id": handle.import_id, "status": handle.status}) if as_json \
            else click.echo(handle.import_id)
        return
    total = int(handle.state().get("rows_expected", 0) or 0)
    report = handle.wait(timeout, on_progress=None if as_json else render.progress_printer(total))
    if not as_json and sys.stderr.isatty():
        click.echo("", err=True)
    if report is None:
        click.echo(f"import {handle.import_id} still running after {timeout} s", err=True)
        sys.exit(EXIT_TIMEOUT)
    _echo_json(report) if as_json else render.print_report(report)
    sys.exit(handle.exit_code())


def _handle(import_id: str):
    from .api import ImportHandle

    return ImportHandle(import_id)


@main.command()
@click.argument("import_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", is_flag=True, help="Refresh one import's progress until it ends; exit with its code.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes with --watch.")
def status(import_id: str | None, as_json: bool, watch: bool, interval: float) -> None:
    """Show one import, or the most recent ones."""
    from worker.tasks import store

    if watch:
        if not import_id:
            raise click.UsageError("--watch needs an import id")
        _watch(import_id, interval)
        return

    ids = [import_id] if import_id else store().recent_imports(20)
    rows = []
    for iid in ids:
        try:
            state = _handle(iid).state()
        except BackfillError as exc:
            raise click.ClickException(str(exc)) from None
        rows.append({
            "import_id": iid, "status": state.get("status"), "source": state.get("source"),
            "rows": int(state.get("rows", 0) or 0), "rows_expected": int(state.get("rows_expected", 0) or 0),
            "imported": int(state.get("imported", 0) or 0), "errors": int(state.get("errors", 0) or 0),
        })
    if as_json:
        _echo_json(rows if not import_id else rows[0])
        return
    if not rows:
        click.echo("no imports yet")
    for r in rows:
        click.echo(f"{r['import_id']}  {r['status']:<22} {r['rows']:>9}/{r['rows_expected']:<9} rows  "
                   f"{r['imported']:>9} imported  {r['errors']:>7} errors  {r['source']}")


def _watch(import_id: str, interval: float) -> None:
    from worker.store import now_ms

    from . import watch

    handle = _handle(import_id)

    def frame() -> tuple[str, bool]:
        try:
            state = handle.state()
        except BackfillError as exc:
            raise click.ClickException(str(exc)) from None
        return watch.render_one(watch.progress(import_id, state, now_ms())), "report" in state

    watch.run(frame, interval)
    sys.exit(handle.exit_code())


@main.command()
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame and exit (for scripts).")
def top(interval: float, once: bool) -> None:
    """Live view of the imports in flight (rows done, rows/s, ETA, errors) and of the queues."""
    from worker import keys
    from worker.store import now_ms
    from worker.tasks import store

    from . import watch

    st = store()

    def frame() -> tuple[str, bool]:
        flying = []
        for iid in st.recent_imports(200):
            state = st.state(iid)
            if state.get("status") in watch.IN_FLIGHT:
                flying.append(watch.progress(iid, state, now_ms()))
        queues = {name: st.r.llen(name) for name in (keys.QUEUE_IMPORTS, keys.QUEUE_REPORTS)}
        at = time.strftime("%Y-%m-%d %H:%M:%S")
        return watch.render_top(flying, queues, st.r.zcard(keys.PENDING), at), False

    watch.run(frame, interval, once=once)


@main.command()
@click.option("--port", default=9808, show_default=True, help="Port of the /metrics endpoint.")
@click.option("--bind", default="0.0.0.0", show_default=True, help="Address to listen on.")
def metrics(port: int, bind: str) -> None:
    """Serve Prometheus metrics (rows by outcome, imports, chunk times, queues, triggers) from Redis."""
    from worker.ops.metrics import serve
    from worker.tasks import store

    serve(store().r, port, bind)
    click.echo(f"metrics on http://{bind}:{port}/metrics", err=True)
    while True:
        time.sleep(3600)


@main.command()
@click.argument("import_id")
@click.option("--json", "as_json", is_flag=True)
def report(import_id: str, as_json: bool) -> None:
    """Print an import's report (exit 3 while it still runs)."""
    try:
        data = _handle(import_id).report()
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from None
    if data is None:
        click.echo(f"import {import_id} is still running", err=True)
        sys.exit(EXIT_TIMEOUT)
    _echo_json(data) if as_json else render.print_report(data)


def _problems(import_id: str, kind: str, output: str | None) -> None:
    try:
        pieces = _handle(import_id).problems_csv(kind)
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from None
    if output and output != "-":
        with open(output, "w", encoding="utf-8", newline="") as out:
            for piece in pieces:
                out.write(piece)
        click.echo(f"wrote {output}", err=True)
    else:
        for piece in pieces:
            click.echo(piece, nl=False)


@main.command()
@click.argument("import_id")
@click.option("-o", "--output", help="Write to this file (default: standard output).")
def errors(import_id: str, output: str | None) -> None:
    """The rows that were not imported, as CSV: fix them and import the file again."""
    _problems(import_id, "errors", output)


@main.command()
@click.argument("import_id")
@click.option("-o", "--output", help="Write to this file (default: standard output).")
def warnings(import_id: str, output: str | None) -> None:
    """The rows imported with a warning, as CSV."""
    _problems(import_id, "warnings", output)


@main.command("inspect")
@click.argument("file")
@click.option("--type", "kind", type=click.Choice(["events", "people"]), default="events", show_default=True)
@click.option("--identifier", type=click.Choice(IDENTIFIERS))
@click.option("--dialect", type=click.Choice(DIALECTS))
@click.option("--map", "mapping", multiple=True, metavar="COLUMN=ATTRIBUTE")
@click.option("--skip", multiple=True, metavar="COLUMN")
@click.option("--encoding")
@click.option("--delimiter")
@click.option("--json", "as_json", is_flag=True)
def inspect_(file: str, kind, identifier, dialect, mapping, skip, encoding, delimiter, as_json) -> None:
    """Show how FILE would be read, without importing anything (no Redis needed)."""
    from .api import inspect

    try:
        source, plan = inspect(file, identifier=identifier, dialect=dialect, encoding=encoding,
                               delimiter=delimiter, kind=kind, mapping=parse_mapping(mapping), skip=skip)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    except FileProblem as problem:
        raise click.ClickException(f"{problem} [{problem.code}]") from None
    source.close()
    columns = plan.columns
    info = {
        "file": file, "encoding": plan.sniffed.encoding, "encoding_reason": plan.sniffed.encoding_reason,
        "delimiter": plan.sniffed.delimiter, "dialect": columns.dialect, "identifier": plan.identifier,
        "rows": plan.rows, "blank_rows": plan.blank,
        "columns": [
            {"column": column_letter(i), "name": name, "role": columns.role_of(i),
             "first_values": list(plan.samples[i])}
            for i, name in enumerate(columns.header)
        ],
        "warnings": list(columns.notes),
    }
    if as_json:
        _echo_json(info)
        return
    shown = {"\t": "tab"}.get(plan.sniffed.delimiter, plan.sniffed.delimiter)
    click.echo(f"file        {file}")
    click.echo(f"encoding    {plan.sniffed.encoding} ({plan.sniffed.encoding_reason})")
    click.echo(f"delimiter   {shown}")
    click.echo(f"dialect     {columns.dialect}, people by {plan.identifier}" if kind == "events"
               else f"people      looked up by {plan.identifier}")
    click.echo(f"rows        {plan.rows}" + (f" ({plan.blank} blank skipped)" if plan.blank else ""))
    click.echo("columns")
    for col in info["columns"]:
        values = ", ".join(repr(v) for v in col["first_values"])
        click.echo(f"  {col['column']:<3} {col['name']!r:<24} {col['role']:<12} {values}")
    for note in columns.notes:
        click.echo(f"warning: {note}")


@main.group()
def people() -> None:
    """The people directory."""


@people.command("show")
@click.argument("who")
@click.option("--by", type=click.Choice(IDENTIFIERS),
              help="What WHO is (default: tried as cio_id, then id, then e-mail).")
@click.option("--json", "as_json", is_flag=True)
def people_show(who: str, by: str | None, as_json: bool) -> None:
    """Print a person's identifiers, attributes and subscription topics (WHO: an id or an e-mail)."""
    from worker.tasks import store

    stored = store().people.find(who.strip(), by)
    if stored is None:
        raise click.ClickException(f"no person with {by or 'cio_id, id or e-mail'} {who!r}")
    identifiers = {k: stored[k] for k in ("cio_id", "id", "email") if k in stored}
    reserved = {k: stored[k] for k in ("created_at", "unsubscribed") if k in stored}
    attributes = {k[2:]: v for k, v in sorted(stored.items()) if k.startswith("a:")}
    topics = {k[2:]: v == "true" for k, v in sorted(stored.items()) if k.startswith("t:")}
    if as_json:
        _echo_json({**identifiers, **reserved, "attributes": attributes, "topics": topics})
        return
    for name, value in identifiers.items():
        click.echo(f"{name:<14}{value}")
    if "created_at" in reserved:
        from worker.timestamps import iso

        click.echo(f"{'created_at':<14}{iso(float(reserved['created_at']))} ({reserved['created_at']})")
    if "unsubscribed" in reserved:
        click.echo(f"{'unsubscribed':<14}{reserved['unsubscribed']}")
    click.echo("attributes" + ("" if attributes else "    (none)"))
    for name, value in attributes.items():
        click.echo(f"  {name:<24}{value}")
    click.echo("topics" + ("" if topics else "        (none set: every topic at its default)"))
    for name, flag in topics.items():
        click.echo(f"  {name:<24}{'subscribed' if flag else 'unsubscribed'}")


@main.group()
def campaigns() -> None:
    """Campaigns that events trigger (name, trigger event, delay)."""


@campaigns.command("add")
@click.argument("name")
@click.option("--event", required=True, help="The event name that triggers it.")
@click.option("--delay", default="0", show_default=True, help="Delay after the event: 0, 30m, 10d...")
def campaigns_add(name: str, event: str, delay: str) -> None:
    """Create or replace campaign NAME."""
    from worker.events.rules import Campaign
    from worker.tasks import store
    from worker.timestamps import parse_duration

    try:
        seconds = parse_duration(delay) or 0
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--delay") from None
    store().add_campaign(Campaign(name, event.strip(), seconds))
    click.echo(f"campaign {name!r}: on {event.strip()!r}, delay {seconds} s")


@campaigns.command("list")
@click.option("--json", "as_json", is_flag=True)
def campaigns_list(as_json: bool) -> None:
    """List campaigns."""
    from worker.tasks import store

    found = sorted(store().campaigns(), key=lambda c: c.name)
    if as_json:
        _echo_json([{"name": c.name, "event": c.event, "delay_s": c.delay_s} for c in found])
        return
    for c in found:
        click.echo(f"{c.name:<30} on {c.event!r:<30} delay {c.delay_s} s")


@campaigns.command("remove")
@click.argument("name")
def campaigns_remove(name: str) -> None:
    """Delete campaign NAME."""
    from worker.tasks import store

    if not store().remove_campaign(name):
        raise click.ClickException(f"no campaign {name!r}")
    click.echo(f"removed {name!r}")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--beat/--no-beat", default=True, help="Also run the trigger scheduler (one per deployment).")
@click.pass_context
def worker(ctx: click.Context, beat: bool) -> None:
    """Run a Celery worker on the imports and reports queues (extra options go to celery)."""
    from worker.app import app  # starts the embedded Redis when REDIS_URL is not set
    from worker.settings import get_settings

    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("REDIS_URL", app.conf.backfill_redis_url)
    scheduler = ["-B", "-s", str(home / "celerybeat-schedule")] if beat else []
    args = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", "imports,reports",
            "--pool", "solo", *scheduler, *ctx.args]
    os.execv(sys.executable, args)


@main.command()
@click.option("--workers", default=2, show_default=True, help="Worker processes to start.")
def demo(workers: int) -> None:
    """Start Redis and workers, import the example files, print the reports."""
    from .demo import run

    sys.exit(run(workers))


if __name__ == "__main__":
    main()
