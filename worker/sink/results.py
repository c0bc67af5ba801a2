"""Opening the results store named by the settings."""
from __future__ import annotations

from pathlib import Path

from worker.errors import ConfigError
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
