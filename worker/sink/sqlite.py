"""The embedded results store: one SQLite file (WAL) under ``BACKFILL_HOME``.

Writes are batches in one transaction; events are unique on (import, row), so a batch written
again (a sink that died before acknowledging it) changes nothing.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson

from worker.sink.schema import LATEST, MIGRATIONS, check_version
from worker.sink.stored import EventQuery, StoredEvent


class SQLiteResults:
    """Results in a SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses no committed batch's order
        self.db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the indexes of a big import stay in memory
        self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")

    def version(self) -> int:
        """The schema version of the database (0: empty)."""
        found = self.db.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        return int(found or 0)

    def upgrade(self) -> list[int]:
        """Apply the migrations the database lacks; the versions applied."""
        applied = []
        for version in range(self.version() + 1, LATEST + 1):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[version]:
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_version VALUES (?)", (version,))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            applied.append(version)
        return applied

    def check(self) -> None:
        """Refuse a schema other than this code's, saying what to do."""
        check_version(self.version(), str(self.path))

    def write_events(self, events: list[tuple]) -> int:
        """Insert events (rows of :data:`StoredEvent` fields) in one transaction; how many were new."""
        if not events:
            return 0
        before = self.db.total_changes
        self.db.execute("BEGIN")
        try:
            self.db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return self.db.total_changes - before

    def events(self, query: EventQuery) -> Iterator[StoredEvent]:
        """Events matching ``query``, by time then import and row."""
        where, args = query.where()
        sql = (f"SELECT import_id, row, person_kind, person, name, ts_ms, event_id, data FROM events {where} "
               "ORDER BY ts_ms, import_id, row LIMIT ?")
        for found in self.db.execute(sql, (*args, query.limit)):
            yield StoredEvent(*found[:7], orjson.loads(found[7]))

    def count_events(self, import_id: str) -> int:
        """How many events of an import are stored."""
        return self.db.execute("SELECT count(*) FROM events WHERE import_id = ?", (import_id,)).fetchone()[0]

    def close(self) -> None:
        self.db.close()
