"""The PostgreSQL results store (``DATABASE_URL=postgresql://...``), with psycopg 3.

A batch is copied (COPY, the bulk path) into a temporary table, then moved into ``events``
with ``ON CONFLICT DO NOTHING``, in one transaction: a batch written twice changes nothing.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

import orjson
import psycopg

from worker.errors import ConfigError, TransientError
from worker.sink.schema import LATEST, MIGRATIONS, check_version
from worker.sink.stored import EventQuery, StoredEvent

_COLUMNS = "import_id, row, person_kind, person, name, ts_ms, event_id, data"


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)


class PostgresResults:
    """Results in PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.where = redacted(url)
        try:
            self.db = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise TransientError(f"the results database {self.where} did not answer: {exc}".strip()) from None
        self._ensure_version_table()

    def _ensure_version_table(self) -> None:
        try:
            self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.InvalidSchemaName) as exc:
            raise ConfigError(f"the results database {self.where} refuses to create tables ({exc}): "
                              "grant CREATE on its schema to this user, or create the tables with a user "
                              "who may (backfill db upgrade)") from None

    def version(self) -> int:
        """The schema version of the database (0: empty)."""
        return int(self.db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0)

    def upgrade(self) -> list[int]:
        """Apply the migrations the database lacks; the versions applied."""
        applied = []
        for version in range(self.version() + 1, LATEST + 1):
            with self.db.transaction():
                for statement in MIGRATIONS[version]:
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_version VALUES (%s)", (version,))
            applied.append(version)
        return applied

    def check(self) -> None:
        """Refuse a schema other than this code's, saying what to do."""
        check_version(self.version(), self.where)

    def write_events(self, events: list[tuple]) -> int:
        """Insert events in one transaction (COPY into a temporary table, then ON CONFLICT DO NOTHING);
        how many were new."""
        if not events:
            return 0
        with self.db.transaction():
            self.db.execute(f"CREATE TEMP TABLE IF NOT EXISTS incoming AS SELECT {_COLUMNS} FROM events WITH NO DATA")
            with self.db.cursor().copy(f"COPY incoming ({_COLUMNS}) FROM STDIN") as copy:
                for row in events:
                    copy.write_row(row)
            moved = self.db.execute(f"INSERT INTO events SELECT {_COLUMNS} FROM incoming ON CONFLICT DO NOTHING")
            self.db.execute("TRUNCATE incoming")
            return moved.rowcount

    def events(self, query: EventQuery) -> Iterator[StoredEvent]:
        """Events matching ``query``, by time then import and row."""
        where, args = query.where("%s")
        sql = f"SELECT {_COLUMNS} FROM events {where} ORDER BY ts_ms, import_id, row LIMIT %s"
        for found in self.db.execute(sql, (*args, query.limit)):
            yield StoredEvent(*found[:7], orjson.loads(found[7]))

    def count_events(self, import_id: str) -> int:
        """How many events of an import are stored."""
        return self.db.execute("SELECT count(*) FROM events WHERE import_id = %s", (import_id,)).fetchone()[0]

    def close(self) -> None:
        self.db.close()
