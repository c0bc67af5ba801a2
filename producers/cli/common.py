"""What every command group of the CLI shares: JSON output, a handle on an import."""
from __future__ import annotations

import click
import orjson


def echo_json(data: object) -> None:
    """Print ``data`` as indented JSON (the ``--json`` of every command)."""
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def handle_of(import_id: str):
    """The Python API's handle on an import (imported late: it connects to Redis)."""
    from producers.api import ImportHandle

    return ImportHandle(import_id)
