"""What every command group of the CLI shares: JSON output, a handle on an import."""
from __future__ import annotations

import click
import orjson

from worker.context import Context
from worker.settings import Settings
from worker.store import Store


def echo_json(data: object) -> None:
    """Print ``data`` as indented JSON (the ``--json`` of every command)."""
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


class Entry:
    """What the ``backfill`` command builds once an invocation: the settings (read from the environment
    when it starts, the embedded Redis allowed: on a laptop with no REDIS_URL the command uses it), and
    the context on their Redis, opened when a command first needs it (``inspect`` and ``--help`` need none)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context: Context | None = None

    def context(self) -> Context:
        if self._context is None:
            self._context = Context.open(self.settings)
        return self._context


def _entry() -> Entry:
    entry = click.get_current_context().find_object(Entry)
    if entry is None:
        raise click.UsageError("run as a command of backfill (the group reads the settings)")
    return entry


def cli_settings() -> Settings:
    """This invocation's settings."""
    return _entry().settings


def cli_context() -> Context:
    """This invocation's context (settings and store), opened at the first call."""
    return _entry().context()


def cli_store() -> Store:
    """This invocation's store."""
    return cli_context().store


def handle_of(import_id: str):
    """The Python API's handle on an import, on this invocation's context."""
    from producers.api import ImportHandle

    return ImportHandle(import_id, cli_context())
