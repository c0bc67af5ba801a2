"""Opening the results store named by the settings."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from worker.errors import ConfigError
from worker.logs import get_logger
from worker.settings import Settings
from worker.sink.sqlite import SQLiteResults


def open_results(settings: Settings, *, create: bool = False):
    """The results store of ``DATABASE_URL``: ``postgresql://...``, ``sqlite:///path`` or, unset, SQLite under
    ``BACKFILL_HOME``. A ``sqlite:///`` file that does not exist is created only with ``create`` (``db
    upgrade``, a sink): a mistyped path in a query is an error, not a new empty database."""
    url = settings.database_url
    if not url:
        try:
            results = SQLiteResults(settings.home / "results.db")
        except ConfigError as exc:
            raise ConfigError(f"{exc} (BACKFILL_HOME)") from None
        results.upgrade()  # the embedded default is this machine's own file: it is kept up to date
        return results
    if url.startswith("sqlite:///"):
        return SQLiteResults(Path(url[len("sqlite:///"):]).expanduser(), create=create)
    if url.startswith(("postgres://", "postgresql://")):
        if url.rstrip("/") in ("postgres:", "postgresql:"):
            raise ConfigError("DATABASE_URL names no server: use postgresql://user@host/db")
        from worker.sink.postgres import (
            PostgresResults,  # (psycopg only when PostgreSQL is used)
        )

        return PostgresResults(url)
    raise ConfigError(f"DATABASE_URL: use postgresql://user@host/db or sqlite:///path (or leave it unset), "
                      f"not {url.split(':', 1)[0]}:...")


log = get_logger("backfill.sink")


def open_when_it_answers(settings: Settings, wait: Callable[[float], bool], *,
                         also: Callable[[object], object] | None = None, longest_s: float = 30.0):
    """The results store, opened and checked (and given to ``also``, e.g. its registration in Redis); a
    database or Redis that does not answer yet is tried again with backoff, as a long-running sink must
    (it may start before its database). ``wait(pause)`` sleeps and returns True to give up (None is then
    returned). A ConfigError (a wrong schema, another store registered) is raised at once."""
    pause = 0.5
    while True:
        results = None
        try:
            results = open_results(settings)
            results.check()
            if also is not None:
                also(results)
            return results
        except ConfigError:
            if results is not None:
                results.close()
            raise
        except Exception as exc:  # noqa: BLE001 - the database or Redis may come up later: try again
            if results is not None:
                results.close()
            log.warning("results database not reachable; the sink tries again", error=str(exc), retry_in_s=pause)
            if wait(pause):
                return None
            pause = min(pause * 2, longest_s)
