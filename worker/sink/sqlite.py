"""The embedded results store: one SQLite file (WAL) under ``BACKFILL_HOME``.

Writes are batches in one transaction; events are unique on (import, row), so a batch written
again (a sink that died before acknowledging it) changes nothing, and each dedupe key is held by one
event within its window (worker/sink/claims.py).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from worker.errors import ResultsRefused
from worker.sink.batch import EVENT_COLUMNS, Batch, imports_of, without
from worker.sink.claims import claim
from worker.sink.queries import Queries, undo_statements, undone_summary
from worker.sink.schema import LATEST, MIGRATIONS, SQLITE_WITHOUT_ROWID, check_version, key_claim, statement, upserts

_PEOPLE, _DELIVERIES, _IMPORTS, _IDENTIFIERS = upserts("?")
_EVENTS = statement("INSERT OR IGNORE INTO events ({cols}) VALUES ({marks})", EVENT_COLUMNS, "?")
_KEYS = key_claim("?")
#: What SQLite (or the binding of a value) refuses for the value itself: "string or blob too big", a
#: constraint, an integer over 64 bits. Locked, busy or a full disk are OperationalError: not these.
REFUSED = (sqlite3.DataError, sqlite3.IntegrityError, OverflowError)


class SQLiteResults(Queries):
    """Results in a SQLite file."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open (``create``: or create) the database file; a path it cannot use is a ConfigError."""
        from worker.errors import ConfigError

        self.path, self.where = path, str(path)
        if not create and not path.is_file():
            raise ConfigError(f"there is no results database at {path}: create it with `backfill db upgrade` "
                              "(or set DATABASE_URL to the one the sinks write)")
        new = not path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses no committed batch's order
            self.db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the indexes of a big import stay in memory
            self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"the results database {path} cannot be used: {exc}") from None
        if new:
            path.chmod(0o600)  # (SQLite gives its -wal and -shm files the same mode)

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
                    self.db.execute(statement.replace(SQLITE_WITHOUT_ROWID, " WITHOUT ROWID"))
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

    def write(self, batch: Batch, undone: Callable[[set[str]], set[str]] | None = None) -> int:
        """Write a batch in one transaction (events inserted once, their late duplicates left out and
        counted in ``batch.late`` (claims.py), people by version, deliveries
        scheduled then sent, import records once); how many events were new. ``undone`` names the
        imports taken back, asked once the write lock is held (an undo deletes under the same lock,
        so what it deleted is never written again). A value SQLite refuses is ResultsRefused; a failure
        of the file itself (locked, disk full) stays an OperationalError, retried whole."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if undone is not None:
                batch = without(batch, undone(imports_of(batch)))
            claim(batch, self._claim_keys, self.key_holders, self.events_held, self.take_keys)
            before = self.db.total_changes
            if batch.events:
                self.db.executemany(_EVENTS, batch.events)
            new_events = self.db.total_changes - before
            if batch.people:
                self.db.executemany(_PEOPLE, batch.people.values())
            if batch.deliveries:
                self.db.executemany(_DELIVERIES, batch.deliveries.values())
            if batch.imports:
                self.db.executemany(_IMPORTS, batch.imports)
            if batch.identifiers:
                self.db.executemany(_IDENTIFIERS, sorted(batch.identifiers.values()))
            self.db.execute("COMMIT")
        except BaseException as exc:
            self.db.execute("ROLLBACK")
            if isinstance(exc, REFUSED):
                raise ResultsRefused(str(exc)) from exc
            raise
        return new_events

    def _claim_keys(self, claims: list[tuple]) -> int:
        before = self.db.total_changes
        self.db.executemany(_KEYS, claims)
        return self.db.total_changes - before

    def undo(self, import_id: str) -> dict:
        """Take an import's events and unsent decisions out (see queries.undo_statements), under the write lock."""
        events, deliveries, sent, record = undo_statements(self.MARK)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            gone = self.db.execute(events, (import_id,)).rowcount
            dropped = self.db.execute(deliveries, (import_id,)).rowcount
            listed = self.db.execute(sent, (import_id,)).fetchall()
            self.db.execute(record, (import_id,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return undone_summary(gone, dropped, listed)

    def _execute(self, sql: str, args: tuple) -> None:
        self.db.execute(sql, args)

    def _fetch(self, sql: str, args: tuple) -> list[tuple]:
        return self.db.execute(sql, args).fetchall()

    def close(self) -> None:
        self.db.close()
