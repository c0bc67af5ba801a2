"""The questions both results backends answer, in SQL they share, and what they do alike (an undo).

A backend gives :class:`Queries` its placeholder (``MARK``: ``?`` for SQLite, ``%s`` for
psycopg) and a ``_fetch(sql, args)`` that returns rows; the SQL is the same for both.
"""
from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from worker.sink import batch as rows
from worker.sink.schema import LATEST, MIGRATIONS, Shape, check_shape, check_version, missing, statement
from worker.sink.stored import EventQuery, StoredEvent, person_of

_EVENTS = ", ".join(rows.EVENT_COLUMNS)
_PERSON_COLUMN = {"cio_id": "cio_id", "id": "id", "email": "lower(email)"}


def _event(found: tuple) -> StoredEvent:
    import_id, row, person_kind, person, name, ts_ms, event_id, data, cio_id = found[:9]
    return StoredEvent(import_id, row, person_kind, person, name, ts_ms, event_id, orjson.loads(data), cio_id)


def undo_statements(mark: str) -> tuple[str, str, str, str]:
    """Taking an import back: its events and the trigger decisions not sent go, the sent ones are listed,
    its record says so."""
    return (f"DELETE FROM events WHERE import_id = {mark}",
            f"DELETE FROM deliveries WHERE import_id = {mark} AND state <> 'sent'",
            f"SELECT delivery_id, campaign, person, sent_ms FROM deliveries WHERE import_id = {mark} ORDER BY row",
            f"UPDATE imports SET status = 'undone' WHERE import_id = {mark}")


def kept_statements(mark: str) -> tuple[str, str]:
    """What an undo leaves to later imports: the events they also brought, inserted as theirs, and their
    records as the undo left them (their counts moved from duplicates to imported)."""
    return (statement("INSERT INTO events ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING", rows.EVENT_COLUMNS, mark),
            statement("INSERT INTO imports ({cols}) VALUES ({marks}) ON CONFLICT (import_id) DO UPDATE SET "
                      "report = excluded.report", rows.IMPORT_COLUMNS, mark))


def undone_summary(events: int, deliveries: int, sent: list[tuple]) -> dict:
    """What an undo did in the results database."""
    return {"events_deleted": events, "decisions_deleted": deliveries,
            "sent": [{"delivery_id": d, "campaign": c, "person": p, "sent_ms": ms} for d, c, p, ms in sent]}


class Queries:
    """Reads of the results database, and what both backends do alike (mixed into each backend: its
    ``db`` is a DB-API connection with ``execute``, sqlite3's or psycopg's)."""

    MARK = "?"
    #: how messages name the database (a path, a URL without its password)
    where = ""
    db: Any

    def _execute(self, sql: str, args: tuple) -> None:
        self.db.execute(sql, args)

    def _fetch(self, sql: str, args: tuple) -> list[tuple]:
        return self.db.execute(sql, args).fetchall()

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def _take_back(self, import_id: str, kept: Sequence[tuple], records: Sequence[tuple]) -> dict:
        """An undo's statements, run inside the transaction (and under the lock) the backend holds: the
        events later imports also brought and their records kept (:func:`kept_statements`), then the
        import's events and unsent decisions deleted (:func:`undo_statements`); what it did."""
        events, deliveries, sent, record = undo_statements(self.MARK)
        keep_events, keep_records = kept_statements(self.MARK)
        cursor = self.db.cursor()
        if kept:
            cursor.executemany(keep_events, list(kept))
        if records:
            cursor.executemany(keep_records, list(records))
        gone = self.db.execute(events, (import_id,)).rowcount
        dropped = self.db.execute(deliveries, (import_id,)).rowcount
        listed = self.db.execute(sent, (import_id,)).fetchall()
        self.db.execute(record, (import_id,))
        return undone_summary(gone, dropped, listed)

    def version(self) -> int:
        """The schema version of the database (0: empty)."""
        return int(self._fetch("SELECT max(version) FROM schema_version", ())[0][0] or 0)

    def upgrade(self) -> list[int]:
        """Apply the migrations the database lacks, each in one transaction with its version; the versions applied."""
        applied = []
        for version in range(self.version() + 1, LATEST + 1):
            self.apply([*MIGRATIONS[version], f"INSERT INTO schema_version VALUES ({version})"])
            applied.append(version)
        return applied

    def check(self) -> None:
        """Refuse a schema other than this code's, or one that lacks a table, a column or an index of it
        (dropped by hand: the version alone would not say), saying what to do."""
        check_version(self.version(), self.where)
        check_shape(self.shape(), self.where)

    def verify(self, *, repair: bool = False) -> str:
        """Make again what the database lacks of the schema at LATEST (``db upgrade``): missing indexes
        always, missing tables and columns only with ``repair`` (empty: what they held is gone); what was
        made, in words. Refuses (ConfigError) what it may not or cannot make, naming it."""
        from worker.errors import ConfigError

        lack = missing(self.shape())
        if not lack:
            return ""
        if lack.unrepairable:
            raise ConfigError(f"the results database {self.where} lacks {lack.describe()}: "
                              f"{', '.join(lack.unrepairable)} cannot be added back: restore the database from a backup")
        if (lack.tables or lack.columns) and not repair:
            raise ConfigError(f"the results database {self.where} lacks {lack.describe()}: restore it from a backup, "
                              "or run `backfill db upgrade --repair` to create them empty")
        self.apply(list(lack.repairs))
        return lack.describe()

    def store_id(self) -> str:
        """The database's own id: made once, at random, and kept in it (``store_meta``), so the same
        database is known as such however it is reached, and another one as another."""
        sql = f"SELECT value FROM store_meta WHERE name = {self.MARK}"
        found = self._fetch(sql, ("store_id",))
        if not found:  # (two processes making it at once: the first insert wins, both read it)
            self._execute(f"INSERT INTO store_meta (name, value) VALUES ({self.MARK}, {self.MARK}) "
                          "ON CONFLICT (name) DO NOTHING", ("store_id", uuid.uuid4().hex))
            found = self._fetch(sql, ("store_id",))
        return found[0][0]

    def apply(self, statements: list[str]) -> None:  # pragma: no cover - each backend has its own
        """Run ``statements`` in one transaction."""
        raise NotImplementedError

    def shape(self) -> Shape:  # pragma: no cover - each backend has its own
        """The tables (with their columns) and indexes the database has."""
        raise NotImplementedError

    def events(self, query: EventQuery) -> Iterator[StoredEvent]:
        """Events matching ``query``, by time then import and row. A person is asked for by any identifier
        they have or had (:meth:`known_as`): their events by cio_id, whatever they were imported by, and
        the events stored without one (before version 4) under any of the person's identifiers."""
        if query.person is not None:
            cios = self.known_as(query.person)
            query = dataclasses.replace(query, person=None, cio_ids=tuple(cios),
                                        persons=self._identifiers(query.person, cios))
        where, args = query.where(self.MARK)
        sql = f"SELECT {_EVENTS} FROM events {where} ORDER BY ts_ms, import_id, row LIMIT {self.MARK}"
        for found in self._fetch(sql, (*args, query.limit)):
            yield _event(found)

    def known_as(self, who: str, by: str | None = None) -> list[str]:
        """The cio_ids of the people ``who`` names (``by``: as a cio_id, id or e-mail only): the person with
        that cio_id, else the people whose id or e-mail it is now, else the people who had it (an id or
        e-mail changed since, the old id an alias keeps, an anonymous id tied to them)."""
        kinds = [by] if by else ["cio_id", "id", "email"]
        now = {person["cio_id"] for kind in kinds for person in self.people(kind, who)}
        if now:
            return sorted(now)
        if by == "cio_id":
            return []
        found = self._fetch(f"SELECT kind, value, cio_id FROM identifiers WHERE value IN ({self.MARK}, {self.MARK})",
                            (who, who.lower()))
        return sorted({cio for kind, value, cio in found if (by is None or kind == by)
                       and value == (who.lower() if kind == "email" else who)})

    def people_known_as(self, who: str, by: str | None = None) -> list[dict]:
        """The stored people ``who`` names now or named once (see :meth:`known_as`)."""
        return [person for cio in self.known_as(who, by) for person in self.people("cio_id", cio)]

    def _identifiers(self, who: str, cios: list[str]) -> tuple[str, ...]:
        """Every identifier events may carry for these people, and ``who`` (as stored: e-mails lowercased)."""
        found = {who.lower() if "@" in who else who}
        for cio in cios:
            found.add(cio)
            for person in self.people("cio_id", cio):
                found.update(v for v in (person["id"], (person["email"] or "").lower()) if v)
            found.update(v for (v,) in self._fetch(f"SELECT value FROM identifiers WHERE cio_id = {self.MARK}", (cio,)))
        return tuple(sorted(found))

    def events_of(self, import_id: str, after_row: int, limit: int) -> list[StoredEvent]:
        """An import's events by row, the first ``limit`` after ``after_row`` (pages through a big import)."""
        sql = (f"SELECT {_EVENTS} FROM events WHERE import_id = {self.MARK} AND row > {self.MARK} "
               f"ORDER BY row LIMIT {self.MARK}")
        return [_event(found) for found in self._fetch(sql, (import_id, after_row, limit))]

    def created_by(self, import_id: str) -> dict[str, tuple[str, str]]:
        """People an import created and nothing changed since (version 1): cio_id -> (kind, directory key)."""
        found = self._fetch(f"SELECT cio_id, id, email FROM people WHERE import_id = {self.MARK} AND version = 1",
                            (import_id,))
        return {cio: ("id", pid) if pid else ("email", (email or "").lower()) for cio, pid, email in found}

    def named_elsewhere(self, import_id: str, cio_id: str, person: str) -> bool:
        """True when an event of another import is the person ``cio_id``'s, or names ``person`` (their id, or
        e-mail lowercased) and was stored without a cio_id (before version 4, or before they existed)."""
        mark = self.MARK
        return bool(self._fetch(f"SELECT 1 FROM events WHERE cio_id = {mark} AND import_id <> {mark} LIMIT 1",
                                (cio_id, import_id))
                    or self._fetch(f"SELECT 1 FROM events WHERE cio_id IS NULL AND person = {mark} "
                                   f"AND import_id <> {mark} LIMIT 1", (person, import_id)))

    def forget_people(self, cio_ids: list[str]) -> None:
        """Delete these people's rows and identifiers (an undone import's people, nothing else naming them)."""
        for cio_id in cio_ids:
            self._execute(f"DELETE FROM people WHERE cio_id = {self.MARK}", (cio_id,))
            self._execute(f"DELETE FROM identifiers WHERE cio_id = {self.MARK}", (cio_id,))

    def key_holders(self, keys: list[bytes]) -> dict[bytes, tuple[str, int]]:
        """The event (import, row) holding each of these dedupe keys that is claimed (worker/sink/claims.py)."""
        held: dict[bytes, tuple[str, int]] = {}
        for at in range(0, len(keys), 500):
            part = keys[at:at + 500]
            held.update((bytes(k), (i, r)) for k, i, r in self._fetch(
                f"SELECT dedupe_key, import_id, row FROM event_keys WHERE dedupe_key IN ({', '.join([self.MARK] * len(part))})",
                tuple(part)))
        return held

    def events_held(self, events: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of these (import, row) events are stored."""
        sql = f"SELECT 1 FROM events WHERE import_id = {self.MARK} AND row = {self.MARK}"
        return {event for event in events if self._fetch(sql, event)}

    def take_keys(self, claims: list[tuple]) -> None:
        """These claims become these events' (theirs was taken back)."""
        for key, import_id, row, seen_h, expires_h in claims:
            self._execute(f"UPDATE event_keys SET import_id = {self.MARK}, row = {self.MARK}, seen_h = {self.MARK}, "
                          f"expires_h = {self.MARK} WHERE dedupe_key = {self.MARK}", (import_id, row, seen_h, expires_h, key))

    def count_events(self, import_id: str) -> int:
        """How many events of an import are stored."""
        return self._fetch(f"SELECT count(*) FROM events WHERE import_id = {self.MARK}", (import_id,))[0][0]

    def people(self, kind: str, value: str) -> list[dict]:
        """The stored people of an identifier (``cio_id``, ``id`` or ``email``; several people may share
        an e-mail in an id-only workspace)."""
        value = value.lower() if kind == "email" else value
        found = self._fetch(f"SELECT {', '.join(rows.PEOPLE_COLUMNS)} FROM people "
                            f"WHERE {_PERSON_COLUMN[kind]} = {self.MARK} ORDER BY cio_id", (value,))
        return [person_of(row) for row in found]

    def deliveries(self, import_id: str) -> list[dict]:
        """The trigger decisions of an import, by row and campaign."""
        found = self._fetch(f"SELECT {', '.join(rows.DELIVERY_COLUMNS)} FROM deliveries "
                            f"WHERE import_id = {self.MARK} ORDER BY row, campaign", (import_id,))
        return [dict(zip(rows.DELIVERY_COLUMNS, row)) for row in found]

    def event_names(self, import_id: str, limit: int = 20) -> list[tuple[str, int]]:
        """An import's stored events counted by name, the most frequent first (at most ``limit`` names)."""
        return [(name, int(n)) for name, n in self._fetch(
            f"SELECT name, count(*) FROM events WHERE import_id = {self.MARK} GROUP BY name "
            f"ORDER BY count(*) DESC, name LIMIT {int(limit)}", (import_id,))]

    def event_times(self, import_id: str, buckets: int = 40) -> tuple[int, int, list[int]] | None:
        """An import's stored events' times as a histogram: (earliest ms, latest ms, ``buckets`` counts of
        equal spans between them); None when none is stored. Two queries whatever the import's size."""
        (low, high), = self._fetch(f"SELECT min(ts_ms), max(ts_ms) FROM events WHERE import_id = {self.MARK}",
                                   (import_id,))
        if low is None:
            return None
        low, high = int(low), int(high)
        counts = [0] * buckets
        span = high - low + 1
        for bucket, n in self._fetch(f"SELECT (ts_ms - {low}) * {int(buckets)} / {span}, count(*) FROM events "
                                     f"WHERE import_id = {self.MARK} GROUP BY 1", (import_id,)):
            counts[min(int(bucket), buckets - 1)] += int(n)
        return low, high, counts

    def decisions(self, import_id: str) -> list[tuple[str, str, int]]:
        """An import's trigger decisions counted by campaign and state (sent, scheduled, discarded...)."""
        return [(campaign, state, int(n)) for campaign, state, n in self._fetch(
            f"SELECT campaign, state, count(*) FROM deliveries WHERE import_id = {self.MARK} GROUP BY campaign, state "
            "ORDER BY campaign, state", (import_id,))]

    def import_record(self, import_id: str) -> dict | None:
        """The stored record of a finished import, or None."""
        found = self._fetch(f"SELECT {', '.join(rows.IMPORT_COLUMNS)} FROM imports WHERE import_id = {self.MARK}",
                            (import_id,))
        return dict(zip(rows.IMPORT_COLUMNS, found[0])) if found else None
