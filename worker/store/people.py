"""The people directory in Redis: snapshots for the rules, the in-order commit, the apply lease.

Layout (names in :mod:`worker.keys`): ``people:by_id`` and ``people:by_email``
map identifiers to cio_ids; ``person:<cio_id>`` holds a person (see
:mod:`worker.people.directory`) as one string, their whole state as a JSON object. A
person stored before that, as a hash of fields, is read as it is (:func:`read_people`,
lib.lua's ``person_version``) and written as one string by the next commit that
changes them: no migration, and an import that was running keeps its people. A dry
run writes the same shapes under its shadow prefix and reads them before the real
ones, so its later chunks see what its earlier chunks would have done.
"""
from __future__ import annotations

import dataclasses
import secrets

import orjson
import redis
from redis.commands.core import Script

from worker import keys
from worker.cells import is_email
from worker.events.rows import person_key
from worker.people.directory import Changes, Snapshot, digest
from worker.people.rows import PersonRow
from worker.segment.anonymous import Attach
from worker.spec import ImportSpec
from worker.store import clock
from worker.store.ids import PeopleSeq
from worker.store.lua import script
from worker.store.people_args import PeopleCommitArgs, PeopleCommitKeys
from worker.store.work import SCRATCH_TTL_S, chunk_state, unknown_import

#: commit outcomes
COMMITTED, ALREADY, CONFLICT, NOT_ITS_TURN = 1, 0, -1, -2


@dataclasses.dataclass(slots=True)
class PeopleCommit:
    """What one people-chunk commit did."""

    status: int
    finalize: bool = False


def _decode(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def read_people(client: redis.Redis, names: list[str]) -> list[dict[str, str] | None]:
    """The people stored at these keys (None where nobody is), in one round trip: MGET, and EXISTS to tell
    whether a key MGET found no string at holds a person stored as a hash before records became one string
    (one transaction, so both answer of one moment). Only then is everything read again, by
    :func:`read_all` (a second round trip)."""
    if not names:
        return []
    pipe = client.pipeline()
    pipe.mget(names)
    pipe.exists(*names)
    values, existing = pipe.execute()
    if existing > len(names) - values.count(None):
        return read_all(client, names)
    return [None if value is None else orjson.loads(value) for value in values]


def read_all(client: redis.Redis, names: list[str]) -> list[dict[str, str] | None]:
    """:func:`read_people`'s answer in one script (read_people.lua), whatever the keys hold: strings, hashes."""
    return [None if raw is None else orjson.loads(raw) if isinstance(raw, bytes)
            else {raw[n].decode(): raw[n + 1].decode() for n in range(0, len(raw), 2)}
            for raw in _read(keys=names, client=client)]


#: read_people.lua, run on the client each call gives (its source as bytes: no client needed to encode it)
_read = Script(None, script("read_people.lua").encode())


class People:
    """Reads and writes of the people directory (people_commit.lua, lease.lua)."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._commit = client.register_script(script("people_commit.lua"))
        self._lease = client.register_script(script("lease.lua"))
        self._seq = PeopleSeq(client)

    # -- where a run's directory lives -----------------------------------------------------
    @staticmethod
    def _layers(spec: ImportSpec) -> list[tuple[str, str, str]]:
        """(by_id, by_email, person prefix) to read, first match wins: a dry run's shadow, then the real ones."""
        real = (keys.PEOPLE_BY_ID, keys.PEOPLE_BY_EMAIL, keys.person(""))
        if not spec.dry_run:
            return [real]
        shadow = keys.import_shadow(spec.import_id)
        return [(shadow + "by_id", shadow + "by_email", shadow + "person:"), real]

    # -- snapshot --------------------------------------------------------------------------
    def snapshot(self, spec: ImportSpec, rows: list[PersonRow]) -> Snapshot:
        """Every directory entry the rows can touch, read in three round trips."""
        layers = self._layers(spec)
        ids = sorted({p.id for p in rows if p.id} | {p.alias_of for p in rows if p.alias_of and not is_email(p.alias_of)})
        emails = sorted({p.email_key for p in rows if p.email_key}
                        | {p.alias_of.lower() for p in rows if p.alias_of and is_email(p.alias_of)})
        snap = Snapshot()
        self._read_index(layers, ids, emails, snap)
        if rows:
            fields = sorted({b"e" + digest(p.email_key) for p in rows if p.email_key}
                            | {b"i" + digest(p.id) for p in rows if p.id and p.email_key})
            if fields:
                found = self.r.hmget(keys.import_seen(spec.import_id), fields)
                snap.seen = {f: v.decode() for f, v in zip(fields, found) if v}
        cios = {c for v in [*snap.by_id.values(), *snap.by_email.values()] for c in v.split(",") if c}
        cios |= {p.cio_id for p in rows if p.cio_id}
        snap.people = self._read_people(layers, sorted(cios))
        # A person's current id and e-mail entries: changing them removes or edits those entries.
        more_ids = sorted({s["id"] for s in snap.people.values() if s.get("id")} - set(snap.by_id) - set(ids))
        more_emails = sorted({s["email"].lower() for s in snap.people.values() if s.get("email")}
                             - set(snap.by_email) - set(emails))
        if more_ids or more_emails:
            self._read_index(layers, more_ids, more_emails, snap)
        # At most one new person per row whose own identifier is unknown (an id, when the row has one:
        # in an id-only workspace a known e-mail does not stop a new id from adding a person).
        may_create = sum(1 for p in rows if not (snap.by_id.get(p.id) if p.id else snap.by_email.get(p.email_key or "")))
        snap.new_ids = self._new_ids(spec, may_create) if spec.identifier != "cio_id" else []
        return snap

    def _read_index(self, layers: list[tuple[str, str, str]], ids: list[str], emails: list[str], snap: Snapshot) -> None:
        pipe = self.r.pipeline(transaction=False)
        for by_id, by_email, _ in layers:
            if ids:
                pipe.hmget(by_id, ids)
            if emails:
                pipe.hmget(by_email, emails)
        answers = iter(pipe.execute())
        found_id: dict[str, str | None] = {}
        found_email: dict[str, str | None] = {}
        for _ in layers:
            for names, found in ((ids, found_id), (emails, found_email)):
                if not names:
                    continue
                for name, value in zip(names, next(answers)):
                    if name not in found and value is not None:
                        found[name] = value.decode()  # "" in a shadow layer: removed by the dry run
        snap.by_id.update({k: v for k, v in found_id.items() if v})
        snap.by_email.update({k: v for k, v in found_email.items() if v})

    def _read_people(self, layers: list[tuple[str, str, str]], cios: list[str]) -> dict[str, dict[str, str]]:
        found = read_people(self.r, [prefix + cio for _, _, prefix in layers for cio in cios])
        people: dict[str, dict[str, str]] = {}
        for n, state in enumerate(found):
            cio = cios[n % len(cios)]
            if state and cio not in people:
                people[cio] = state
        return people

    def _new_ids(self, spec: ImportSpec, count: int) -> list[str]:
        if count == 0:
            return []
        seq = keys.import_shadow(spec.import_id) + "seq" if spec.dry_run else keys.PEOPLE_SEQ
        return self._seq.new(seq, count, clock.now_ms(self.r))

    # -- commit ----------------------------------------------------------------------------
    def commit(self, spec: ImportSpec, chunk: int, changes: Changes, errors: list[bytes], warnings: list[bytes],
               *, at_ms: int, retention_s: int, failed: bool = False, cancelled: int = 0,
               attach: Attach | None = None, max_problem_rows: int = 0, lost: bool = False) -> PeopleCommit:
        """Commit a chunk in file order if the directory still matches its snapshot (people_commit.lua);
        ``attach``: the anonymous ids a Segment chunk ties to people, and the held events it moves;
        ``max_problem_rows``: the most error (and warning) rows the import keeps (0: all); ``lost``: a failed
        chunk whose rows were gone."""
        iid = spec.import_id
        by_id, by_email, prefix = self._layers(spec)[0]
        args = PeopleCommitArgs(chunk, spec.dry_run, at_ms, prefix, retention_s, SCRATCH_TTL_S, iid,
                                chunk_state(failed, cancelled, lost), max_problem_rows, changes, errors, warnings,
                                attach or Attach())
        status, extra = self._commit(keys=PeopleCommitKeys.of(iid, chunk, by_id, by_email).layout(),
                                     args=args.layout())
        if int(status) == -3:
            raise unknown_import(iid)
        return PeopleCommit(int(status), bool(extra) if int(status) == COMMITTED else False)

    # -- anonymous ids ---------------------------------------------------------------------
    def tied(self, anonymous_ids: list[str]) -> dict[str, str]:
        """The user id each of these anonymous ids is tied to (those tied), in one round trip."""
        if not anonymous_ids:
            return {}
        found = self.r.hmget(keys.ANONYMOUS_LINKS, anonymous_ids)
        return {a: u.decode() for a, u in zip(anonymous_ids, found) if u is not None}

    def held(self, anonymous_ids: list[str]) -> dict[str, tuple[str | None, list[bytes]]]:
        """Per anonymous id: (the user id it is tied to or None, the events held for it)."""
        if not anonymous_ids:
            return {}
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(keys.ANONYMOUS_LINKS, anonymous_ids)
        for anon in anonymous_ids:
            pipe.lrange(keys.ANONYMOUS_PREFIX + anon, 0, -1)
        owners, *lists = pipe.execute()
        return {a: (None if o is None else o.decode(), events) for a, o, events in zip(anonymous_ids, owners, lists)}

    # -- the apply lease -------------------------------------------------------------------
    def take_lease(self, import_id: str, lease_ms: int) -> str | None:
        """The lease on applying this import's chunks, or None when another worker holds it."""
        token = secrets.token_hex(8)
        return token if self.r.set(keys.import_apply_lease(import_id), token, nx=True, px=lease_ms) else None

    def keep_lease(self, import_id: str, token: str, lease_ms: int) -> tuple[int, int]:
        """After a chunk: (1, next) keep applying, (0, next) released, (-1, 0) lost (see lease.lua)."""
        kept, next_chunk = self._lease(keys=[keys.import_apply_lease(import_id), keys.import_hash(import_id)],
                                       args=[token, keys.import_chunk_prefix(import_id), lease_ms])
        return int(kept), int(next_chunk)

    def drop_lease(self, import_id: str, token: str) -> None:
        """Give the lease up (after an error, or to let another task go on)."""
        key = keys.import_apply_lease(import_id)
        if self.r.get(key) == token.encode():
            self.r.delete(key)

    # -- reading people, and adding one -----------------------------------------------------
    def add(self, identifier: str, value: str) -> str:
        """Create a person (or find them) by id or e-mail and return their cio_id."""
        key = person_key(value, identifier)
        index = keys.people_index(identifier)
        existing = self.r.hget(index, key)
        if existing:
            return str(existing.decode())
        [cio] = self._seq.new(keys.PEOPLE_SEQ, 1, clock.now_ms(self.r))
        if not self.r.hsetnx(index, key, cio):
            return str(self.r.hget(index, key).decode())
        self.r.set(keys.person(cio), orjson.dumps({"cio_id": cio, identifier: value,
                                                   "created_at": str(clock.now_ms(self.r) // 1000), "_v": "1"}))
        return cio

    def find(self, value: str, by: str | None = None) -> dict[str, str] | None:
        """A person by id, e-mail or cio_id (``by``; default: cio_id, then id, then e-mail)."""
        order = [by] if by else ["cio_id", "id", "email"]
        for kind in order:
            if kind == "cio_id":
                cios = [value]
            else:
                index = keys.PEOPLE_BY_EMAIL if kind == "email" else keys.PEOPLE_BY_ID
                found = _decode(self.r.hget(index, value.lower() if kind == "email" else value))
                cios = found.split(",") if found else []
            for state in read_people(self.r, [keys.person(cio) for cio in cios]):
                if state:
                    return state
        return None
