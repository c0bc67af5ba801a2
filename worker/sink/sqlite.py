"""The embedded results store: one SQLite file (WAL) under ``BACKFILL_HOME``.

Writes are batches in one transaction; events are unique on (import, row), so a batch written
again (a sink that died before acknowledging it) changes nothing, and each dedupe key is held by one
event within its window (worker/sink/claims.py).
"""
from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from worker.errors import ResultsRefused, ResultsUnavailable
from worker.sink.batch import EVENT_COLUMNS, Batch, imports_of, without
from worker.sink.claims import claim
from worker.sink.queries import Queries
from worker.sink.schema import BOOKKEEPING, SQLITE_WITHOUT_ROWID, Shape, key_claim, statement, upserts

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
            if new:  # (fixed once the first table is made; a file made before keeps its 4 KiB pages)
                # fewer, larger pages: shallower indexes, fewer pages to write a batch: ~0.7 us a stored
                # event on a million (bench/README.md, "A leaner sink")
                self.db.execute("PRAGMA page_size=8192")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses no committed batch's order
            # With NORMAL the WAL is made durable at each checkpoint: one every ~4 MB of it whatever the page
            # size (SQLite's default, 1,000 pages, was 4 MB of 4 KiB pages), so a host that loses power
            # risks no more of what was committed than with 4 KiB pages.
            page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
            self.db.execute(f"PRAGMA wal_autocheckpoint={4_096_000 // page_size}")
            self.db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the indexes of a big import stay in memory
            for sql in BOOKKEEPING:
                self.db.execute(sql)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"the results database {path} cannot be used: {exc}") from None
        if new:
            path.chmod(0o600)  # (SQLite gives its -wal and -shm files the same mode)

    def place(self) -> str:
        """Where the store is, for another host to tell it from its own: this host and the file's path."""
        return f"{socket.gethostname()}:{self.path.resolve()}"

    def apply(self, statements: list[str]) -> None:
        """Run ``statements`` in one transaction (a migration, a repair)."""
        with self._locked():
            for sql in statements:
                self.db.execute(sql.replace(SQLITE_WITHOUT_ROWID, " WITHOUT ROWID"))

    def shape(self) -> Shape:
        """The tables (with their columns) and indexes the file has."""
        tables = [name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return Shape({name: frozenset(column[1] for column in self.db.execute(f'PRAGMA table_info("{name}")'))
                      for name in tables},
                     dict(self.db.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'").fetchall()))

    def write(self, batch: Batch, undone: Callable[[set[str]], set[str]] | None = None) -> int:
        """Write a batch in one transaction (events inserted once, their late duplicates left out and
        counted in ``batch.late`` (claims.py), people by version, deliveries
        scheduled then sent, import records once); how many events were new. ``undone`` names the
        imports taken back, asked once the write lock is held (an undo deletes under the same lock,
        so what it deleted is never written again). A value SQLite refuses is ResultsRefused; a failure
        of the file itself is retried whole: locked stays an OperationalError, a full disk is ResultsUnavailable
        saying "disk full"."""
        try:
            with self._locked():
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
        except REFUSED as exc:  # (rolled back already)
            raise ResultsRefused(str(exc)) from exc
        return new_events

    def _claim_keys(self, claims: list[tuple]) -> int:
        before = self.db.total_changes
        self.db.executemany(_KEYS, claims)
        return self.db.total_changes - before

    def undo(self, import_id: str, kept: Sequence[tuple] = (), records: Sequence[tuple] = ()) -> dict:
        """Take an import's events and unsent decisions out (see queries.undo_statements), under the write lock;
        in the same transaction, the events later imports also brought (``kept``: their rows, as theirs) and
        those imports' records (``records``: imports rows) stay (queries.kept_statements)."""
        with self._locked():
            return self._take_back(import_id, kept, records)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One transaction holding the write lock from its start (BEGIN IMMEDIATE), rolled back on any failure."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException as exc:
            self._roll_back(exc)
            raise

    def _roll_back(self, exc: BaseException) -> None:
        """Roll back the transaction ``exc`` broke. SQLite rolls back by itself on a full disk or an I/O
        error, and a ROLLBACK then fails ("no transaction is active"): that must not hide the cause. A full
        disk is raised as such (ResultsUnavailable: the sink retries the batch); else the caller raises ``exc``."""
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # (the connection is gone or rolled back already: the cause is what matters)
        if isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            raise ResultsUnavailable(f"the results database {self.path}: disk full ({exc}): free space on its disk; "
                                     "what is not stored stays in the outbox") from exc
