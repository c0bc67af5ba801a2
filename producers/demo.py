"""``backfill demo``: Redis, workers, the example files, their reports, on any machine; with ``--console``
(what ``make demo`` runs), then the web console on the same Redis and workers, with a fresh import key,
until Ctrl-C."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from worker.context import Context
from worker.settings import Settings

#: The example files, shipped inside the package (so `backfill demo` runs from an installed wheel too).
EXAMPLES = Path(__file__).resolve().parent / "examples"


def start_workers(url: str, count: int, *, beat: bool = True, log_dir: Path | None = None,
                  extra_env: dict[str, str] | None = None, include: tuple[str, ...] = ()) -> list[subprocess.Popen]:
    """Start ``count`` Celery workers on ``url``, each a prefork pool of one process (so chunk time limits
    hold), the first with beat; ``include``: more task modules to load (the benchmark's)."""
    env = {**os.environ, "REDIS_URL": url, **(extra_env or {})}
    processes = []
    for index in range(count):
        args = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", "imports,reports",
                "--pool", "prefork", "--concurrency", "1", "-n", f"w{index}-{os.getpid()}@%h",
                "--without-mingle", "--without-gossip"]
        for module in include:
            args += ["-I", module]
        if beat and index == 0 and log_dir is not None:
            args += ["-B", "-s", str(log_dir / "celerybeat-schedule")]
        out = open(log_dir / f"worker{index}.log", "wb") if log_dir else subprocess.DEVNULL
        processes.append(subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT))
    return processes


def wait_ready(app, count: int, timeout: float = 60.0) -> None:
    """Block until ``count`` workers answer a ping."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=0.5) or []) >= count:
            return
        time.sleep(0.2)
    raise click.ClickException(f"workers did not start within {timeout:.0f} s")


def stop_workers(processes: list[subprocess.Popen]) -> None:
    """Warm shutdown (SIGTERM), then kill what is left after 20 s."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _show_stored(context: Context) -> bool:
    """Wait for the workers' sinks to store what was imported, then read a person's events back."""
    from worker import keys
    from worker.sink.results import open_results
    from worker.sink.stored import EventQuery

    deadline = time.monotonic() + 30
    settings, st = context.settings, context.store
    while st.r.xlen(keys.OUTBOX) and time.monotonic() < deadline:
        time.sleep(0.2)
    results = open_results(settings)
    try:
        found = list(results.events(EventQuery(person="tyrion.lannister@casterlyrock.com")))
    finally:
        results.close()
    where = settings.database_url or settings.home / "results.db"
    click.echo(f"== Read back from the results database ({where}):")
    click.echo("   backfill events --person tyrion.lannister@casterlyrock.com")
    for e in found:
        moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.ts_ms / 1000))
        click.echo(f"   {moment}  {e.person}  {e.name}  {e.data}")
    return len(found) >= 3


def serve_console(context: Context, settings: Settings) -> None:
    """``backfill serve`` in this process on the demo's Redis (its port, else a free one), with a new import
    key to sign in with, until Ctrl-C."""
    import socket

    import uvicorn

    from producers.web.app import create_app
    from worker.store.embedded import free_port

    port = settings.api_port
    with socket.socket() as probe:
        try:
            probe.bind((settings.api_bind, port))
        except OSError:  # (something else holds BACKFILL_API_PORT: any free port will do for a demo)
            port = free_port()
    _, key = context.store.apikeys.create("make demo", "import")
    host = "127.0.0.1" if settings.api_bind in ("0.0.0.0", "::") else settings.api_bind
    click.echo(f"== The web console: open http://{host}:{port}/ and sign in with this import key:\n   {key}\n"
               "   (drop a file on New import, or one of producers/examples/; Ctrl-C stops the service and the "
               "workers)")
    uvicorn.run(create_app(context), host=settings.api_bind, port=port, log_level="warning", access_log=False)


def run(workers: int, settings: Settings, *, console: bool = False) -> int:
    """Run the demo with ``settings`` (the embedded Redis allowed); the exit code is 0 when every example
    finished as expected. ``console``: then serve the web console until Ctrl-C."""
    from producers.cli.render import print_report
    from worker.app import app
    from worker.events.rules import Campaign

    from .api import enqueue_import

    context = Context.open(settings)
    # The demo prints reports; the producer's log lines would only interleave with them.
    logging.getLogger("backfill.producer").setLevel(logging.WARNING)
    url = context.redis_url
    click.echo(f"Redis: {url}" + ("" if settings.redis_url else "  (embedded; set REDIS_URL to use yours)"))
    settings.home.mkdir(parents=True, exist_ok=True)
    processes = start_workers(url, workers, log_dir=settings.home, extra_env={"BACKFILL_WORKER_SINK": "1"})
    try:
        wait_ready(app, workers)
        click.echo(f"{workers} workers ready (logs in {settings.home})\n")
        st = context.store
        st.triggers.add_campaign(Campaign("checkout follow-up", "Completes checkout", 10 * 86_400))
        st.triggers.add_campaign(Campaign("purchase thank-you", "purchase", 0))
        runs: list[tuple[str, Path, dict[str, Any], str]] = [
            ("People first (Customer.io people CSV)", EXAMPLES / "people.csv", dict(kind="people"), "completed"),
            ("Vero example, passive, creating its person", EXAMPLES / "vero_events.csv",
             dict(create_people=True), "completed"),
            ("Customer.io example, triggering, no window (dry run: preview only)",
             EXAMPLES / "customerio_events.csv", dict(trigger=True, trigger_window="none", dry_run=True),
             "completed"),
            ("Customer.io example, for real", EXAMPLES / "customerio_events.csv", {}, "completed"),
            ("A file with bad rows", EXAMPLES / "events_with_errors.csv", dict(create_people=True),
             "completed_with_errors"),
            ("A Segment archive: people and events in one file, four bad lines", EXAMPLES / "segment.ndjson", {},
             "completed_with_errors"),
        ]
        ok = True
        for title, path, options, expected in runs:
            click.echo(f"== {title}: backfill import {path.relative_to(EXAMPLES.parent.parent)} ...")
            handle = enqueue_import(path, **options, context=context)
            report = handle.wait(timeout=60)
            if report is None:
                click.echo("   no report within 60 s")
                ok = False
                continue
            print_report(report)
            ok &= report["status"] == expected
            if report["errors"]:
                click.echo(f"\n   backfill errors {report['import_id']}:")
                for line in "".join(handle.problems_csv("errors")).lstrip("\ufeff").splitlines():
                    click.echo(f"   {line}")
            click.echo("")
        ok &= _show_stored(context)
        if console:
            click.echo("")
            serve_console(context, settings)
        return 0 if ok else 1
    finally:
        stop_workers(processes)
