"""The results database's schema, as numbered migrations. Pure: SQL text, no I/O.

Each migration is a list of statements, applied in one transaction with the version it
brings. ``backfill db upgrade`` applies what a database lacks; the sink refuses to start on
an older schema (and on a newer one: written by a later backfill) with a message that says
which command to run.
"""
from __future__ import annotations

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
}
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
