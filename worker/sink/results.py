"""Opening the results store named by the settings."""
from __future__ import annotations

from pathlib import Path

from worker.errors import ConfigError
from worker.settings import Settings
from worker.sink.sqlite import SQLiteResults


def open_results(settings: Settings) -> SQLiteResults:
    """The results store of ``DATABASE_URL``: ``sqlite:///path`` or, unset, SQLite under ``BACKFILL_HOME``."""
    url = settings.database_url
    if not url:
        return SQLiteResults(settings.home / "results.db")
    if url.startswith("sqlite:///"):
        return SQLiteResults(Path(url[len("sqlite:///"):]).expanduser())
    if url.startswith(("postgres://", "postgresql://")):
        raise ConfigError("DATABASE_URL names PostgreSQL, whose results store is not built yet: "
                          "unset it (SQLite under BACKFILL_HOME) or use sqlite:///path")
    raise ConfigError(f"DATABASE_URL {url!r}: use sqlite:///path (or leave it unset)")
