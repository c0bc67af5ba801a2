"""The results database's schema, as numbered migrations. Pure: SQL text, no I/O.

Each migration is a list of statements, applied in one transaction with the version it
brings. ``backfill db upgrade`` applies what a database lacks; the sink refuses to start on
an older schema (and on a newer one: written by a later backfill) with a message that says
which command to run.
"""
from __future__ import annotations

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
}

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
