"""Running backfill's processes: ``worker``, ``metrics``, ``demo``."""
from __future__ import annotations

import dataclasses
import os
import sys
import time

import click

from producers.cli.common import cli_settings, cli_store


@click.command()
@click.option("--port", default=9808, show_default=True, help="Port of the /metrics endpoint.")
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface, e.g. in a container).")
def metrics(port: int, bind: str) -> None:
    """Serve Prometheus metrics (rows by outcome, imports, chunk times, queues, triggers) from Redis."""
    from worker.ops.metrics import serve

    serve(cli_store().r, port, bind, check_every_s=cli_settings().redis_check_s)
    click.echo(f"metrics on http://{bind}:{port}/metrics", err=True)
    while True:
        time.sleep(3600)


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--beat/--no-beat", default=True, help="Also run the trigger scheduler (one per deployment).")
@click.option("--concurrency", default=1, show_default=True, help="Pool processes (prefork: time limits hold).")
@click.option("--embedded", is_flag=True, help="With no REDIS_URL, use (and start) the embedded Redis.")
@click.option("--sink/--no-sink", default=True, help="Also drain the outbox into the results database.")
@click.pass_context
def worker(ctx: click.Context, beat: bool, concurrency: int, embedded: bool, sink: bool) -> None:
    """Run a Celery worker on the imports and reports queues (extra options go to celery).

    It needs REDIS_URL (or --embedded). The prefork pool, even with one process, lets Celery
    stop a chunk over its time limits; the solo pool could not.
    """
    if not os.environ.get("REDIS_URL") and not embedded:
        raise click.ClickException("REDIS_URL is not set: point it at the Redis your producers use "
                                   "(redis://host:6379/0), or pass --embedded to use backfill's own")

    from worker.context import Context

    settings = dataclasses.replace(cli_settings(), embedded=embedded, worker_sink=sink)
    context = Context.open(settings)  # starts the embedded Redis when asked

    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    if sink:
        _check_results(context)
    # celery reads its settings from the environment: what this command decided goes there, with the
    # Redis it resolved (the embedded server's socket)
    env = {**os.environ, **settings.as_environ("embedded", "worker_sink"), "REDIS_URL": context.redis_url}
    scheduler = ["-B", "-s", str(home / "celerybeat-schedule")] if beat else []
    args = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", "imports,reports",
            "--pool", "prefork", "--concurrency", str(concurrency), *scheduler, *ctx.args]
    os.execve(sys.executable, args, env)


def _check_results(context) -> None:
    """Refuse to start a worker whose sink could not run: a malformed DATABASE_URL, a schema older or
    newer than this code's, a user who may not create tables, a results store other than the one this
    Redis's sinks write (registered by the first: worker/sink/registry.py). A database or Redis that
    does not answer yet is not a reason: the sink retries."""
    from worker.errors import ConfigError
    from worker.sink.registry import OtherStore, claim
    from worker.sink.results import open_results
    from worker.store import TRANSIENT

    try:
        results = open_results(context.settings)
        try:
            results.check()
            claim(context.store.r, results)
        finally:
            results.close()
    except OtherStore as exc:
        raise click.ClickException(str(exc)) from None  # (it names --no-sink already)
    except ConfigError as exc:
        raise click.ClickException(f"{exc} (or start the worker with --no-sink)") from None
    except TRANSIENT as exc:
        click.echo(f"warning: {exc}; the sink will keep trying", err=True)


@click.command()
@click.option("--workers", default=2, show_default=True, help="Worker processes to start.")
@click.option("--console/--no-console", default=False, show_default=True,
              help="Then serve the web console (BACKFILL_API_PORT, else a free port) with a new import key, "
                   "until Ctrl-C (make demo turns it on).")
def demo(workers: int, console: bool) -> None:
    """Start Redis and workers, import the example files, print the reports (and, with --console, serve the
    web console on them)."""
    from producers.demo import run

    sys.exit(run(workers, cli_settings(), console=console))


