"""Following imports: ``status``, ``top``, ``report``, and the ``errors`` and ``warnings`` files."""
from __future__ import annotations

import sys
import time

import click

from producers.cli import render
from producers.cli.common import cli_settings, cli_store, echo_json, handle_of
from worker.errors import BackfillError
from worker.ops.report import EXIT_TIMEOUT


@click.command()
@click.argument("import_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", is_flag=True, help="Refresh one import's progress until it ends; exit with its code.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes with --watch.")
def status(import_id: str | None, as_json: bool, watch: bool, interval: float) -> None:
    """Show one import, or the most recent ones."""
    from worker.sink.stored import dead_letters

    if watch:
        if not import_id:
            raise click.UsageError("--watch needs an import id")
        _watch(import_id, interval)
        return


    ids = [import_id] if import_id else cli_store().imports.recent(20, cli_settings().retention_s)
    rows = []
    for iid in ids:
        try:
            state = handle_of(iid).state()
        except BackfillError as exc:
            if not import_id:
                continue  # expired between the listing and now
            raise click.ClickException(str(exc)) from None
        rows.append({
            "import_id": iid, "status": state.get("status"), "source": state.get("source"),
            "rows": int(state.get("rows", 0) or 0), "rows_expected": int(state.get("rows_expected", 0) or 0),
            "imported": int(state.get("imported", 0) or 0), "errors": int(state.get("errors", 0) or 0),
            "events_stored": int(state.get("events_stored", 0) or 0), "waiting": state.get("waiting", ""),
            "dead_letters": dead_letters(state),
            **{k: state[k] for k in ("retry_of", "retried_by") if state.get(k)},
            **({"undone_ms": int(state["undone_ms"])} if state.get("undone_ms") else {}),
        })
    if as_json:
        echo_json(rows if not import_id else rows[0])
        return
    if not rows:
        click.echo("no imports yet")
    for r in rows:
        click.echo(f"{r['import_id']}  {r['status']:<22} {r['rows']:>9}/{r['rows_expected']:<9} rows  "
                   f"{r['imported']:>9} imported  {r['events_stored']:>9} stored  {r['errors']:>7} errors  {r['source']}")
        if r["dead_letters"]:
            click.echo(f"{'':<23}{r['dead_letters']} outbox entries refused by the results database, set aside "
                       "as dead letters (backfill sink --retry-dead)")
        if r["waiting"]:
            click.echo(f"{'':<23}waiting {r['waiting']}")


def _watch(import_id: str, interval: float) -> None:
    from producers.cli import watch
    from worker.store import now_ms

    handle = handle_of(import_id)

    def frame() -> tuple[str, bool]:
        try:
            state = handle.state()
        except BackfillError as exc:
            raise click.ClickException(str(exc)) from None
        return watch.render_one(watch.progress(import_id, state, now_ms(cli_store().r))), "report" in state

    watch.run(frame, interval)
    sys.exit(handle.exit_code())


@click.command()
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame and exit (for scripts).")
def top(interval: float, once: bool) -> None:
    """Live view of the imports in flight (rows done, rows/s, ETA, errors) and of the queues."""
    from producers.cli import watch
    from worker import keys
    from worker.store import now_ms
    from worker.store.outbox import Outbox

    st = cli_store()

    def frame() -> tuple[str, bool]:
        flying = []
        sinks = st.work.sinks()
        for iid in st.imports.recent(200):
            state = st.imports.state(iid)
            shown = watch.progress(iid, state, now_ms(st.r))
            if state.get("status") in watch.IN_FLIGHT or (sinks and shown["storing"]):
                flying.append(shown)
        queues = {name: st.r.llen(name) for name in (keys.QUEUE_IMPORTS, keys.QUEUE_REPORTS)}
        at = time.strftime("%Y-%m-%d %H:%M:%S")
        entries, age = Outbox(st.r, "top").backlog()
        dead = st.r.xlen(keys.SINK_DEAD)
        return watch.render_top(flying, queues, st.r.zcard(keys.PENDING), at, (entries, age, sinks), dead), False

    watch.run(frame, interval, once=once)


@click.command()
@click.argument("import_id")
@click.option("--json", "as_json", is_flag=True)
def report(import_id: str, as_json: bool) -> None:
    """Print an import's report (exit 3 while it still runs)."""
    try:
        data = handle_of(import_id).report()
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from None
    if data is None:
        click.echo(f"import {import_id} is still running", err=True)
        sys.exit(EXIT_TIMEOUT)
    echo_json(data) if as_json else render.print_report(data)


def _problems(import_id: str, kind: str, output: str | None) -> None:
    try:
        pieces = handle_of(import_id).problems_csv(kind)
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


@click.command()
@click.argument("import_id")
@click.option("-o", "--output", help="Write to this file (default: standard output).")
def errors(import_id: str, output: str | None) -> None:
    """The rows that were not imported, as CSV: fix them and import the file again."""
    _problems(import_id, "errors", output)


@click.command()
@click.argument("import_id")
@click.option("-o", "--output", help="Write to this file (default: standard output).")
def warnings(import_id: str, output: str | None) -> None:
    """The rows imported with a warning, as CSV."""
    _problems(import_id, "warnings", output)


