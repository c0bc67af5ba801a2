"""The results database's schema, as numbered migrations. Pure: SQL text, no I/O.

Each migration is a list of statements, applied in one transaction with the version it
brings. ``backfill db upgrade`` applies what a database lacks; the sink refuses to start on
an older schema (and on a newer one: written by a later backfill) with a message that says
which command to run.
"""
from __future__ import annotations

import dataclasses
import re

from worker.sink.batch import DELIVERY_COLUMNS, IDENTIFIER_COLUMNS, IMPORT_COLUMNS, KEY_COLUMNS, PEOPLE_COLUMNS

#: A statement's text ending in this is run by SQLite with " WITHOUT ROWID" in its place (one B-tree keyed
#: by the primary key instead of a table and an index: a table of random keys written at every batch),
#: by PostgreSQL without it.
SQLITE_WITHOUT_ROWID = " /* sqlite: WITHOUT ROWID */"

#: version -> statements bringing the schema to it (SQLite and PostgreSQL alike where possible)
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE events (
            import_id   TEXT    NOT NULL,
            row         INTEGER NOT NULL,
            person_kind TEXT    NOT NULL,
            person      TEXT    NOT NULL,
            name        TEXT    NOT NULL,
            ts_ms       BIGINT  NOT NULL,
            event_id    TEXT,
            data        TEXT    NOT NULL,
            PRIMARY KEY (import_id, row)
        )""",
        "CREATE INDEX events_by_person ON events (person, ts_ms)",
        "CREATE INDEX events_by_name ON events (name, ts_ms)",
    ],
    2: [
        # version: the person's _v in the directory; an older state never overwrites a newer one
        """CREATE TABLE people (
            cio_id       TEXT    PRIMARY KEY,
            id           TEXT,
            email        TEXT,
            created_at   BIGINT,
            unsubscribed SMALLINT,
            attributes   TEXT    NOT NULL,
            topics       TEXT    NOT NULL,
            version      BIGINT  NOT NULL,
            import_id    TEXT
        )""",
        "CREATE INDEX people_by_id ON people (id)",
        "CREATE INDEX people_by_email ON people (lower(email))",
        # one row per (event, campaign): sent, scheduled, discarded, outside_window or future
        """CREATE TABLE deliveries (
            delivery_id TEXT    PRIMARY KEY,
            import_id   TEXT    NOT NULL,
            row         INTEGER NOT NULL,
            campaign    TEXT    NOT NULL,
            person_kind TEXT    NOT NULL,
            person      TEXT    NOT NULL,
            event       TEXT    NOT NULL,
            state       TEXT    NOT NULL,
            event_ms    BIGINT,
            due_ms      BIGINT,
            sent_ms     BIGINT
        )""",
        "CREATE INDEX deliveries_by_campaign ON deliveries (campaign, due_ms)",
        "CREATE INDEX deliveries_by_person ON deliveries (person)",
        "CREATE INDEX deliveries_by_import ON deliveries (import_id, row)",
        """CREATE TABLE imports (
            import_id   TEXT   PRIMARY KEY,
            kind        TEXT,
            source      TEXT,
            status      TEXT   NOT NULL,
            created_ms  BIGINT,
            finished_ms BIGINT,
            retry_of    TEXT,
            options     TEXT   NOT NULL,
            report      TEXT   NOT NULL
        )""",
        "CREATE INDEX imports_by_time ON imports (created_ms)",
    ],
    # a person's Vero tags (Segment sources: integrations.Vero.tags), a JSON array of strings; NULL = none
    3: ["ALTER TABLE people ADD COLUMN tags TEXT"],
    # A person's events by one key whatever they were imported by, and every identifier a person has
    # had (an id or e-mail changed since, the old id an alias keeps, an anonymous id an identify tied):
    # first_ms/last_ms, when the sink first and last saw it so (NULL first: before this version).
    4: [
        "ALTER TABLE events ADD COLUMN cio_id TEXT",
        """CREATE TABLE identifiers (
            kind     TEXT   NOT NULL,
            value    TEXT   NOT NULL,
            cio_id   TEXT   NOT NULL,
            first_ms BIGINT,
            last_ms  BIGINT,
            PRIMARY KEY (value, kind, cio_id)
        )""",
        "CREATE INDEX identifiers_by_person ON identifiers (cio_id)",
        # What the stored people are known by now; earlier identifiers of theirs were never stored.
        "INSERT INTO identifiers (kind, value, cio_id) SELECT 'id', id, cio_id FROM people WHERE id IS NOT NULL",
        "INSERT INTO identifiers (kind, value, cio_id) SELECT 'email', lower(email), cio_id FROM people "
        "WHERE email IS NOT NULL",
        # Events stored before: the person their identifier names now (an e-mail only when one person has it).
        "UPDATE events SET cio_id = (SELECT p.cio_id FROM people p WHERE p.id = events.person) WHERE person_kind = 'id'",
        "UPDATE events SET cio_id = (SELECT CASE WHEN count(*) = 1 THEN min(p.cio_id) END FROM people p "
        "WHERE lower(p.email) = events.person) WHERE person_kind = 'email'",
        "CREATE INDEX events_by_cio ON events (cio_id, ts_ms)",
    ],
    # Each dedupe key's claim (worker/sink/claims.py): the event holding it and the hour it expires, so a
    # key Redis forgot (a host crash rolled it back) is never stored twice within its window. Events
    # stored before this version hold no claim. The key's 10 bytes as they are (BYTEA: compared as bytes
    # by both; a hex TEXT key cost PostgreSQL its collation on every comparison).
    5: [
        """CREATE TABLE event_keys (
            dedupe_key BYTEA   PRIMARY KEY,
            import_id  TEXT    NOT NULL,
            row        INTEGER NOT NULL,
            seen_h     BIGINT  NOT NULL,
            expires_h  BIGINT  NOT NULL
        )""" + SQLITE_WITHOUT_ROWID,
    ],
    # A person's events are found by cio_id; by identifier only those stored without one (before version
    # 4, or naming no person). So the index by person holds only those, and the one by cio_id the others
    # (a query's "cio_id IS NULL" can then only take the index by person). A full index by person cost the
    # sink a B-tree insert at a random place an event (~1-3 us in SQLite: bench/README.md, "A leaner sink").
    6: [
        "DROP INDEX events_by_person",
        "CREATE INDEX events_by_person_no_cio ON events (person, ts_ms) WHERE cio_id IS NULL",
        "DROP INDEX events_by_cio",
        "CREATE INDEX events_by_cio ON events (cio_id, ts_ms) WHERE cio_id IS NOT NULL",
    ],
}

#: Made when a database is opened, before any migration: the schema's version, and the store's own id
#: (``store_id``, see worker/sink/registry.py).
BOOKKEEPING = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS store_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
]

#: Upserts shared by both backends (placeholders filled in per driver). A person's row is replaced only
#: by a higher version; a delivery's only from "scheduled" to "sent"; an import's record is final.
PEOPLE_UPSERT = (
    "INSERT INTO people ({cols}) VALUES ({marks}) ON CONFLICT (cio_id) DO UPDATE SET "
    "id = excluded.id, email = excluded.email, created_at = excluded.created_at, "
    "unsubscribed = excluded.unsubscribed, attributes = excluded.attributes, topics = excluded.topics, "
    "version = excluded.version, import_id = excluded.import_id, tags = excluded.tags WHERE people.version < excluded.version"
)
DELIVERY_UPSERT = (
    "INSERT INTO deliveries ({cols}) VALUES ({marks}) ON CONFLICT (delivery_id) DO UPDATE SET "
    "state = excluded.state, sent_ms = excluded.sent_ms "
    "WHERE deliveries.state = 'scheduled' AND excluded.state = 'sent'"
)
IMPORT_INSERT = "INSERT INTO imports ({cols}) VALUES ({marks}) ON CONFLICT (import_id) DO NOTHING"
#: An identifier's row keeps the earliest and the latest time it was seen (an unknown first stays unknown).
IDENTIFIER_UPSERT = (
    "INSERT INTO identifiers ({cols}) VALUES ({marks}) ON CONFLICT (value, kind, cio_id) DO UPDATE SET "
    "first_ms = CASE WHEN identifiers.first_ms IS NULL OR identifiers.first_ms <= excluded.first_ms "
    "THEN identifiers.first_ms ELSE excluded.first_ms END, "
    "last_ms = CASE WHEN identifiers.last_ms >= excluded.last_ms THEN identifiers.last_ms ELSE excluded.last_ms END"
)

#: A claim is made, or taken over from an expired one (its window passed: the event is new again).
KEY_CLAIM = (
    "INSERT INTO event_keys ({cols}) VALUES ({marks}) ON CONFLICT (dedupe_key) DO UPDATE SET "
    "import_id = excluded.import_id, row = excluded.row, seen_h = excluded.seen_h, expires_h = excluded.expires_h "
    "WHERE event_keys.expires_h < excluded.seen_h"
)


def key_claim(mark: str, source: str | None = None) -> str:
    """The claims' upsert with the driver's placeholder, or (``source``) from that table's rows, in key order
    (sinks claiming the same keys never deadlock)."""
    if source is None:
        return statement(KEY_CLAIM, KEY_COLUMNS, mark)
    cols = ", ".join(KEY_COLUMNS)
    return KEY_CLAIM.replace("VALUES ({marks})", f"SELECT {cols} FROM {source} ORDER BY dedupe_key").format(cols=cols)


def statement(template: str, columns: tuple[str, ...], mark: str) -> str:
    """``template`` with its column list and one placeholder per column (``mark``: ``?`` or ``%s``)."""
    return template.format(cols=", ".join(columns), marks=", ".join([mark] * len(columns)))


def upserts(mark: str) -> tuple[str, str, str, str]:
    """The people, deliveries, imports and identifiers writes with the driver's placeholder."""
    return (statement(PEOPLE_UPSERT, PEOPLE_COLUMNS, mark), statement(DELIVERY_UPSERT, DELIVERY_COLUMNS, mark),
            statement(IMPORT_INSERT, IMPORT_COLUMNS, mark), statement(IDENTIFIER_UPSERT, IDENTIFIER_COLUMNS, mark))
LATEST = max(MIGRATIONS)


def check_version(found: int, where: str) -> None:
    """Refuse a schema other than this code's (``where`` names the database), saying what to do."""
    from worker.errors import ConfigError

    if found < LATEST:
        raise ConfigError(f"the results database {where} is at schema version {found}, this backfill needs "
                          f"{LATEST}: run `backfill db upgrade`")
    if found > LATEST:
        raise ConfigError(f"the results database {where} is at schema version {found}, newer than this "
                          f"backfill knows ({LATEST}): upgrade backfill")


# -- the schema a database at LATEST must have ---------------------------------------------------------
_CREATE_TABLE = re.compile(r"\s*CREATE TABLE (\w+) \((.*)\)\s*$", re.S)
_ADD_COLUMN = re.compile(r"\s*ALTER TABLE (\w+) ADD COLUMN (\w+)")
_CREATE_INDEX = re.compile(r"\s*CREATE INDEX (\w+) ON (\w+)")
_DROP_INDEX = re.compile(r"\s*DROP INDEX (\w+)")
_NOT_COLUMNS = {"PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "CONSTRAINT"}


@dataclasses.dataclass(frozen=True, slots=True)
class Shape:
    """Tables (name -> columns) and indexes (name -> table) of a schema."""

    tables: dict[str, frozenset[str]]
    indexes: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class Missing:
    """What a database lacks of the schema at LATEST: tables, columns ("table.column"), indexes; and the
    statements that would create them (empty: a column no statement can add back, as a NOT NULL one)."""

    tables: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    indexes: tuple[str, ...] = ()
    repairs: tuple[str, ...] = ()
    #: columns that cannot be added back to a table holding rows (created with the table, NOT NULL)
    unrepairable: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.tables or self.columns or self.indexes)

    def describe(self) -> str:
        """What is missing, in words."""
        parts = [f"{kind} {', '.join(names)}" for kind, names in
                 (("tables", self.tables), ("columns", self.columns), ("indexes", self.indexes)) if names]
        return "; ".join(parts)


def _columns(body: str) -> list[str]:
    """The column names of a CREATE TABLE body (its items at depth 0, constraints left out)."""
    items, depth, start = [], 0, 0
    for at, char in enumerate(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(body[start:at])
            start = at + 1
    items.append(body[start:])
    return [item.split()[0] for item in items if item.split() and item.split()[0].upper() not in _NOT_COLUMNS]


def expected_shape() -> Shape:
    """The tables, columns and indexes the migrations up to LATEST create."""
    tables: dict[str, list[str]] = {}
    indexes: dict[str, str] = {}
    for version in sorted(MIGRATIONS):
        for sql in MIGRATIONS[version]:
            if found := _CREATE_TABLE.match(sql.replace(SQLITE_WITHOUT_ROWID, "")):
                tables[found[1]] = _columns(found[2])
            elif found := _ADD_COLUMN.match(sql):
                tables[found[1]].append(found[2])
            elif found := _CREATE_INDEX.match(sql):
                indexes[found[1]] = found[2]
            elif found := _DROP_INDEX.match(sql):
                del indexes[found[1]]
    return Shape({name: frozenset(columns) for name, columns in tables.items()}, indexes)


def missing(found: Shape) -> Missing:
    """What ``found`` (a database's shape) lacks of :func:`expected_shape`, with the statements that make
    it again from the migrations: a table as it was created plus the columns added since, a column added
    by a migration, an index."""
    want = expected_shape()
    tables = [t for t in want.tables if t not in found.tables]
    columns = [f"{t}.{c}" for t in want.tables if t in found.tables for c in sorted(want.tables[t] - found.tables[t])]
    # (the indexes of a missing table are made with it, not named apart)
    indexes = [i for i, t in want.indexes.items() if i not in found.indexes and t not in tables]
    statements, added = [], set()
    # an index is made as its last statement makes it (none: dropped since)
    final = {named[1]: sql for version in sorted(MIGRATIONS) for sql in MIGRATIONS[version]
             if (named := _CREATE_INDEX.match(sql) or _DROP_INDEX.match(sql))}
    for version in sorted(MIGRATIONS):
        for sql in MIGRATIONS[version]:
            if (created := _CREATE_TABLE.match(sql.replace(SQLITE_WITHOUT_ROWID, ""))) and created[1] in tables:
                statements.append(sql)
            elif (column := _ADD_COLUMN.match(sql)) and (column[1] in tables or f"{column[1]}.{column[2]}" in columns):
                statements.append(sql)
                added.add(f"{column[1]}.{column[2]}")
            elif (index := _CREATE_INDEX.match(sql)) and final[index[1]] == sql and \
                    (index[1] in indexes or index[2] in tables):
                statements.append(sql)
    return Missing(tuple(tables), tuple(columns), tuple(indexes), tuple(statements),
                   tuple(c for c in columns if c not in added))


def check_shape(found: Shape, where: str) -> None:
    """Refuse a database at LATEST that lacks a table, a column or an index of it, naming them."""
    from worker.errors import ConfigError

    lack = missing(found)
    if lack:
        raise ConfigError(f"the results database {where} is at schema version {LATEST} but lacks {lack.describe()}: "
                          "run `backfill db upgrade` (it says what it can make again)")
