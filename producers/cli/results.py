"""The results store: ``sink`` (drain the outbox into it), ``db upgrade``, ``events`` (ask it)."""
from __future__ import annotations

import csv
import io
import os
import socket
import sys
import time
from datetime import UTC, datetime

import click
import orjson

from producers.cli.common import cli_settings, cli_store
from worker.cells import escape_cell


def _results(create: bool = False):
    from worker.sink.results import open_results

    return open_results(cli_settings(), create=create)


@click.command()
@click.option("--name", default=None, help="This sink's consumer name (default: host and pid).")
@click.option("--alive-file", type=click.Path(dir_okay=False), default=None,
              help="Touch this file at every turn of the loop (for a liveness probe: its age is the sink's silence).")
@click.option("--retry-dead", is_flag=True,
              help="Write the dead letters (entries the database refused) again, once the cause is fixed: "
                   "those it takes now are stored and removed, the others are listed with its message. Then exit.")
def sink(name: str | None, alive_file: str | None, retry_dead: bool) -> None:
    """Write what the imports committed (events, people, trigger decisions, reports) from the Redis outbox
    to the results database, until stopped (Ctrl-C or SIGTERM: after the batch in hand). An entry the
    database refuses (a NUL in a text, a value out of range) is set aside as a dead letter, the rest stored."""
    import signal
    import threading
    from pathlib import Path

    from worker.sink.drain import run
    from worker.sink.registry import claim
    from worker.sink.results import open_when_it_answers
    from worker.store.outbox import Outbox

    settings = cli_settings()
    cli_store().guard.start()  # a Redis that evicts keys: refused in one line, before anything
    if retry_dead:  # a one-off command: a database that does not answer is said, once
        results = _results()
        try:
            results.check()
            claim(cli_store().r, results)  # another store registered: one line, exit 1
        except BaseException:
            results.close()
            raise
    else:  # a sink started before its database (or with Redis away) waits for it, as the worker's does
        def wait(pause: float) -> bool:
            time.sleep(pause)
            return False  # (never gives up: a supervisor stops it)

        waited = open_when_it_answers(settings, wait, also=lambda found: claim(cli_store().r, found))
        assert waited is not None  # (its wait never gives up)
        results = waited
    if retry_dead:
        try:
            _retry_dead(cli_store().r, results, settings.sink_batch)
        finally:
            results.close()
        return
    consumer = name or f"{socket.gethostname()}-{os.getpid()}"
    click.echo(f"sink {consumer}: Redis outbox -> {results.where}", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    alive = Path(alive_file) if alive_file else None
    try:
        run(Outbox(cli_store().r, consumer), results, batch=settings.sink_batch, block_ms=settings.sink_block_ms,
            claim_idle_ms=settings.sink_claim_idle_ms, stop=stop.is_set,
            on_turn=(lambda: alive.touch()) if alive else None, guard=cli_store().guard,
            registered=lambda: claim(cli_store().r, results))
    except KeyboardInterrupt:
        pass
    finally:
        results.close()


def _retry_dead(client, results, batch: int) -> None:
    from worker.sink.drain import retry_dead
    from worker.store.outbox import Outbox, dead_letters

    stored, left = retry_dead(dead_letters(client), results, Outbox(client, "retry").undone, batch=batch)
    for entry_id, import_id, message in left:
        click.echo(f"dead letter {entry_id.decode()} (import {import_id.decode(errors='replace') or '-'}): "
                   f"still refused: {message}")
    click.echo(f"stored {stored} dead letter(s); {len(left)} still refused")
    if left:
        sys.exit(1)


@click.group()
def db() -> None:
    """The results database."""


@db.command("upgrade")
@click.option("--repair", is_flag=True, help="Create again, empty, the tables and columns the database lacks "
              "(what they held is lost: restore a backup to keep it). Missing indexes are always made again.")
def db_upgrade(repair: bool) -> None:
    """Bring the results database to this backfill's schema (creating it when it does not exist), check
    that it has every table, column and index of it, and register it in Redis as the store the sinks
    write (when REDIS_URL is set)."""
    results = _results(create=True)
    try:
        registered = _register(results, replace=False, required=False)  # another store registered: refused first
        applied = results.upgrade()
        made = results.verify(repair=repair)
    finally:
        results.close()
    click.echo(f"applied {', '.join(map(str, applied))}" if applied else "already up to date")
    for line in (f"made again: {made}" if made else "", registered):
        if line:
            click.echo(line)


@db.command("register")
@click.option("--replace", is_flag=True, help="Replace the store registered before (the results moved on purpose).")
def db_register(replace: bool) -> None:
    """Register the results database as the store every sink on this Redis writes (the first sink, or
    `db upgrade`, does it by itself); a sink writing another database then refuses to start. After moving
    the results to another database on purpose, --replace makes it the registered one: stop the sinks
    that wrote the old one first, and point every host's DATABASE_URL at the new one."""
    results = _results()
    try:
        results.check()
        click.echo(_register(results, replace=replace, required=True))
    finally:
        results.close()


def _register(results, *, replace: bool, required: bool) -> str:
    """Register ``results`` in Redis (``replace``: whatever was registered); what to say about it. Not
    ``required`` (``db upgrade``): with no REDIS_URL, or a Redis that does not answer, the first sink
    registers it instead."""
    from worker.errors import ConfigError
    from worker.sink import registry
    from worker.store import TRANSIENT

    if not required and not os.environ.get("REDIS_URL"):
        return ""
    try:
        client = cli_store().r
        mine = registry.identity_of(results)
        if replace:
            before = registry.replace(client, mine)
            return (f"registered {mine.where} (store {mine.store_id})"
                    + (f", replacing {before.where} (store {before.store_id})"
                       if before and before.store_id != mine.store_id else ""))
        new = registry.register(client, mine)
        return f"registered {mine.where} (store {mine.store_id}) as the store this Redis's sinks write" \
            if new or required else ""
    except (*TRANSIENT, ConfigError) as exc:
        if required or isinstance(exc, registry.OtherStore):
            raise
        click.echo(f"warning: not registered in Redis ({exc}): the first sink registers it", err=True)
        return ""


def _ms(text: str | None) -> int | None:
    if text is None:
        return None
    from worker.timestamps import parse_time

    found = parse_time(text.strip())
    if found is None:
        raise click.BadParameter(f"{text!r} is not a time (ISO 8601 or Unix seconds)")
    return round(found * 1000)


@click.command()
@click.option("--import", "import_id", help="Only this import's events.")
@click.option("--person", help="Only this person's: a cio_id, an id or an e-mail in any case, one they have or "
              "had (an old id or e-mail, an alias's old id, a tied anonymous id): all their events, whichever "
              "identifier they were imported by.")
@click.option("--name", help="Only events of this name.")
@click.option("--since", help="From this time (ISO 8601 or Unix seconds).")
@click.option("--until", help="Before this time.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "ndjson"]), default="table", show_default=True)
def events(import_id, person, name, since, until, limit, fmt) -> None:
    """Stored events, by time (the results database)."""
    from worker.sink.stored import EventQuery

    query = EventQuery(import_id=import_id, person=person.strip() if person else None,
                       name=name, since_ms=_ms(since), until_ms=_ms(until), limit=limit)
    if query.since_ms is not None and query.until_ms is not None and query.until_ms <= query.since_ms:
        raise click.BadParameter("--until must be later than --since", param_hint="--until")
    results = _results()
    results.check()
    found = list(results.events(query))
    results.close()
    if fmt == "ndjson":
        for e in found:
            sys.stdout.write(orjson.dumps({"import": e.import_id, "row": e.row, "person_kind": e.person_kind,
                                           "person": e.person, "name": e.name, "time": _iso(e.ts_ms),
                                           "timestamp_ms": e.ts_ms, "event_id": e.event_id,
                                           "data": e.data, "cio_id": e.cio_id}).decode() + "\n")
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["import", "row", "person", "name", "time", "event_id", "data", "cio_id"])
        for e in found:
            writer.writerow([escape_cell(str(v)) for v in (e.import_id, e.row, e.person, e.name, _iso(e.ts_ms),
                                                           e.event_id or "", orjson.dumps(e.data).decode(),
                                                           e.cio_id or "")])
        sys.stdout.write(out.getvalue())
        return
    if not found:
        click.echo("no stored events match", err=True)
    for e in found:
        click.echo(f"{_iso(e.ts_ms)}  {e.person:<30} {e.name:<28} {e.import_id}:{e.row}  "
                   f"{orjson.dumps(e.data).decode()}")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
