"""Logging: structlog for our lines and, through the same handler, Celery's.

JSON lines when not on a terminal (or ``BACKFILL_LOG_FORMAT=json``), a readable
console otherwise. Lines logged while a chunk runs carry ``import_id`` and
``chunk`` (bound with :func:`bind_chunk`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

import orjson
import structlog

from worker.settings import Settings

_configured = False


def _json(obj: object, **_: object) -> str:
    return orjson.dumps(obj, default=str).decode()


def configure(settings: Settings, *, stream=None) -> None:
    """Route structlog and the standard library's logging through one handler."""
    global _configured
    stream = stream or sys.stderr
    use_json = settings.log_format == "json" or (settings.log_format == "auto" and not stream.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer = structlog.processors.JSONRenderer(serializer=_json) if use_json \
        else structlog.dev.ConsoleRenderer(colors=stream.isatty() and not os.environ.get("NO_COLOR"))
    # JSON needs the traceback turned into text first (the console renderer prints it itself).
    tracebacks = [structlog.processors.format_exc_info] if use_json else []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tracebacks, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    _configured = True


def get_logger(name: str = "backfill") -> structlog.stdlib.BoundLogger:
    """A structlog logger (configures defaults on first use)."""
    if not _configured:
        from worker.settings import get_settings
        configure(get_settings())
    return structlog.get_logger(name)


@contextlib.contextmanager
def bind_chunk(import_id: str, chunk: int | None = None) -> Iterator[None]:
    """Every line logged inside carries the import id (and chunk number)."""
    values = {"import_id": import_id} if chunk is None else {"import_id": import_id, "chunk": chunk}
    with structlog.contextvars.bound_contextvars(**values):
        yield
