"""The PostgreSQL results store (``DATABASE_URL=postgresql://...``), with psycopg 3.

A batch is one transaction: its events copied (COPY, the bulk path, in its binary format) straight into ``events``, or,
when some are there already (a batch written again), through a temporary table and ``ON CONFLICT
DO NOTHING``; their dedupe keys claimed first (worker/sink/claims.py), copied the same way straight into
``event_keys``, or, when some key is claimed already, through a temporary table and one upsert; people,
deliveries and import records as upserts (see schema.py).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from operator import itemgetter

import psycopg

from worker.errors import ConfigError, ResultsRefused, ResultsUnavailable
from worker.sink.batch import EVENT_COLUMNS, KEY_COLUMNS, Batch, imports_of, without
from worker.sink.claims import claim
from worker.sink.queries import Queries
from worker.sink.schema import BOOKKEEPING, Shape, key_claim, upserts

_COLUMNS = ", ".join(EVENT_COLUMNS)
_KEY_COLUMNS = ", ".join(KEY_COLUMNS)
#: The columns' types of each column list copied (schema.py), for COPY's binary format: psycopg writes the
#: values as the server keeps them, with no text to make and parse again (~0.9 us of the sink's CPU an
#: event: bench/README.md, "A leaner sink").
_TYPES = {_COLUMNS: ("text", "int4", "text", "text", "text", "int8", "text", "text", "text"),
          _KEY_COLUMNS: ("bytea", "text", "int4", "int8", "int8")}
_PEOPLE, _DELIVERIES, _IMPORTS, _IDENTIFIERS = upserts("%s")
_KEYS = key_claim("%s", source="incoming_keys")
#: What the server (or psycopg, adapting a value) refuses for the value itself: data exceptions (class 22:
#: a NUL in a text, a number out of range, a bad encoding), integrity violations (class 23), program limits
#: (class 54: an index row too big). A lost connection, a full disk or a lock timeout are none of these.
REFUSED = (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded)
#: The advisory lock sinks hold shared while they write a batch and an undo holds alone ("bfundo").
UNDO_LOCK = 0x6266756E646F


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)


class PostgresResults(Queries):
    """Results in PostgreSQL."""

    MARK = "%s"

    def __init__(self, url: str) -> None:
        self.url, self.where = url, redacted(url)
        self.db = self._connect()
        self._ensure_bookkeeping()

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise ResultsUnavailable(f"the results database {self.where} did not answer: "
                                     f"{' '.join(str(exc).split())}") from None

    def _ensure_bookkeeping(self) -> None:
        try:
            for sql in BOOKKEEPING:
                self.db.execute(sql)
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.InvalidSchemaName) as exc:
            raise ConfigError(f"the results database {self.where} refuses to create tables ({exc}): "
                              "grant CREATE on its schema to this user, or create the tables with a user "
                              "who may (backfill db upgrade)") from None

    def place(self) -> str:
        """Where the store is: the server and database the connection reached (no user, no password)."""
        info = self.db.info
        return f"postgresql://{info.host}:{info.port}/{info.dbname}"

    def apply(self, statements: list[str]) -> None:
        """Run ``statements`` in one transaction (a migration, a repair)."""
        with self.db.transaction():
            for sql in statements:
                self.db.execute(sql)

    def shape(self) -> Shape:
        """The tables (with their columns) and indexes of the connection's schema."""
        tables: dict[str, set[str]] = {}
        for table, column in self.db.execute("SELECT table_name, column_name FROM information_schema.columns "
                                             "WHERE table_schema = current_schema()").fetchall():
            tables.setdefault(table, set()).add(column)
        indexes = self.db.execute("SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema()")
        return Shape({name: frozenset(columns) for name, columns in tables.items()}, dict(indexes.fetchall()))

    def write(self, batch: Batch, undone: Callable[[set[str]], set[str]] | None = None) -> int:
        """Write a batch in one transaction; how many events were new. Events are copied (COPY) straight
        into their table; a batch holding events already stored (written again after a sink died before
        acknowledging it) goes through a temporary table and ON CONFLICT DO NOTHING instead. A connection
        the server dropped (a restart) is opened again; a failure is a TransientError (the sink retries),
        a value the server refuses (a NUL in a text, a number out of range, an index row over its size)
        is ResultsRefused (the sink sets that entry aside)."""
        if self.db.broken or self.db.closed:
            self.db = self._connect()
        try:
            return self._write(batch, undone)
        except REFUSED as exc:  # (before OperationalError: ProgramLimitExceeded is one)
            raise ResultsRefused(" ".join(str(exc).split())) from None
        except psycopg.OperationalError as exc:
            raise ResultsUnavailable(f"the results database {self.where} failed: {' '.join(str(exc).split())}") from None

    def _write(self, batch: Batch, undone: Callable[[set[str]], set[str]] | None) -> int:
        with self.db.transaction():
            # Sinks share this lock; an undo takes it alone: the imports taken back are asked under it,
            # so an undo's deletions never race a batch that asked before them.
            self.db.execute("SELECT pg_advisory_xact_lock_shared(%s)", (UNDO_LOCK,))
            if undone is not None:
                batch = without(batch, undone(imports_of(batch)))
            claim(batch, self._claim_keys, self.key_holders, self.events_held, self.take_keys)
            new_events = self._write_events(batch.events) if batch.events else 0
            cursor = self.db.cursor()
            if batch.people:
                cursor.executemany(_PEOPLE, list(batch.people.values()))
            if batch.deliveries:
                cursor.executemany(_DELIVERIES, list(batch.deliveries.values()))
            if batch.imports:
                cursor.executemany(_IMPORTS, batch.imports)
            if batch.identifiers:  # (in key order: sinks writing the same identifiers never deadlock)
                cursor.executemany(_IDENTIFIERS, sorted(batch.identifiers.values()))
        return new_events

    def _claim_keys(self, claims: list[tuple]) -> int:
        """Claim these keys (in key order, as claims.py sorts them: sinks claiming the same keys never
        deadlock): how many rows were inserted or taken over. The usual batch claims only new keys, copied
        straight into the table; a key held already (a batch written again, a late duplicate, an expired
        claim) undoes the copy, and the claims go through a temporary table and the upsert."""
        if self._copy_new("event_keys", _KEY_COLUMNS, claims):
            return len(claims)
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_keys AS SELECT * FROM event_keys WITH NO DATA")
        self._copy("incoming_keys", _KEY_COLUMNS, claims)
        claimed = self.db.execute(_KEYS).rowcount
        self.db.execute("TRUNCATE incoming_keys")
        return claimed

    def _write_events(self, events: list[tuple]) -> int:
        if self._copy_new("events", _COLUMNS, events):
            return len(events)
        self.db.execute(f"CREATE TEMP TABLE IF NOT EXISTS incoming AS SELECT {_COLUMNS} FROM events WITH NO DATA")
        self._copy("incoming", _COLUMNS, events)
        moved = self.db.execute(f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM incoming ON CONFLICT DO NOTHING")
        self.db.execute("TRUNCATE incoming")
        return moved.rowcount

    def _copy_new(self, table: str, columns: str, rows: list[tuple]) -> bool:
        """Copy ``rows`` straight into ``table`` (COPY, the bulk path) in a savepoint; False, with nothing
        copied, when one of them is there already (a unique key)."""
        try:
            with self.db.transaction():  # a savepoint: a conflict undoes only the copy
                self._copy(table, columns, rows)
            return True
        except psycopg.errors.UniqueViolation:
            return False

    def _copy(self, table: str, columns: str, rows: list[tuple]) -> None:
        """Copy ``rows`` into ``table`` in COPY's binary format; a value that format cannot carry as its
        column's type (a number in a text column, an integer over 64 bits, or over 32 for ``row``: psycopg
        would cut it) or that the server refuses copies them all as text instead, as before: the server
        converts the value, or refuses it with the message it always gave."""
        types = _TYPES[columns]
        try:
            numbers = list(map(itemgetter(types.index("int4")), rows))
            binary = -2**31 <= min(numbers) and max(numbers) < 2**31
        except (TypeError, ValueError):  # (not numbers, or none)
            binary = False
        if binary:
            try:
                with self.db.transaction():  # a savepoint: a value refused undoes only this copy
                    self._copy_as(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)", rows, types)
                return
            except (TypeError, OverflowError, psycopg.DataError):
                pass  # (a value refused is refused again as text: with the message it always had)
        self._copy_as(f"COPY {table} ({columns}) FROM STDIN", rows, None)

    def _copy_as(self, sql: str, rows: list[tuple], types: tuple[str, ...] | None) -> None:
        with self.db.cursor().copy(sql) as copy:
            if types:
                copy.set_types(types)
            for row in rows:
                copy.write_row(row)

    def undo(self, import_id: str, kept: Sequence[tuple] = (), records: Sequence[tuple] = ()) -> dict:
        """Take an import's events and unsent decisions out (see queries.undo_statements), the sinks held off;
        in the same transaction, the events later imports also brought (``kept``: their rows, as theirs) and
        those imports' records (``records``: imports rows) stay (queries.kept_statements)."""
        if self.db.broken or self.db.closed:
            self.db = self._connect()
        with self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(%s)", (UNDO_LOCK,))
            return self._take_back(import_id, kept, records)
