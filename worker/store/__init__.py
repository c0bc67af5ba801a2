"""The Redis store: every read and write of backfill's data goes through here.

Key names come from :mod:`worker.keys`; multi-key changes are Lua scripts
(``*.lua`` beside this file, each key and argument commented there).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator

import orjson
import redis

from worker import keys
from worker.errors import ImportNotFound, TransientError
from worker.events.chunk import ChunkOutcome
from worker.events.rows import person_key
from worker.events.rules import Campaign
from worker.spec import ImportSpec
from worker.store.lua import script
from worker.store.people import SCRATCH_TTL_S, PeopleStore

#: Failures worth retrying with backoff: the store was unreachable or busy.
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, TransientError)


def connect(url: str) -> redis.Redis:
    """A Redis client for ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
    return redis.Redis.from_url(url, health_check_interval=30)


def now_ms() -> int:
    """Wall-clock time in ms, the unit of every stored time."""
    return int(time.time() * 1000)


@dataclasses.dataclass(slots=True)
class CommitResult:
    """What one chunk commit did."""

    committed: bool
    imported: int
    duplicates: int
    finalize: bool


#: Upper bounds (seconds) of the chunk time histogram's buckets.
CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def bucket_of(seconds: float) -> str:
    """The histogram field counting ``seconds``: the smallest bound it does not exceed."""
    return next((repr(b) for b in CHUNK_BUCKETS if seconds <= b), "+Inf")


def _pack_events(outcome: ChunkOutcome) -> list[object]:
    """commit.lua's packed form of the events: count, keys, JSONs, then the outcome(s)."""
    outcomes = outcome.outcomes
    packed: list[object] = [len(outcomes), bytes(outcome.keys), bytes(outcome.bodies)]
    first = outcomes[0] if outcomes else "passive"
    if isinstance(first, str) and outcomes.count(first) == len(outcomes):
        packed.append(first)  # the usual case: every event has the same counter outcome
    else:
        packed += ["", *outcomes]
    return packed


class Store:
    """backfill's data in one Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._commit = client.register_script(script("commit.lua"))
        self._set_total = client.register_script(script("set_total.lua"))
        self._finalize = client.register_script(script("finalize.lua"))
        self._move_due = client.register_script(script("move_due.lua"))
        self._prune = client.register_script(script("prune.lua"))
        self._specs: dict[str, ImportSpec] = {}
        self.people = PeopleStore(client)

    # -- imports ---------------------------------------------------------------
    def create_import(self, spec: ImportSpec, info: dict[str, object], retention_s: int) -> None:
        """Record a new import (status ``queued``) before any chunk of it is queued."""
        created = now_ms()
        fields = {k: orjson.dumps(v) if not isinstance(v, (str, int, float, bytes)) else v
                  for k, v in info.items()}
        pipe = self.r.pipeline()
        pipe.hset(keys.import_hash(spec.import_id), mapping={
            "spec": spec.to_json(), "status": "queued", "created_ms": created,
            "chunks_done": 0, **fields,
        })
        # Until finalize sets the real retention, a lost import still expires.
        pipe.expire(keys.import_hash(spec.import_id), retention_s)
        pipe.zadd(keys.IMPORTS_INDEX, {spec.import_id: created})
        pipe.hincrby(keys.METRICS, "imports_created", 1)
        pipe.execute()

    def fail_import(self, import_id: str, source: str, code: str, message: str) -> None:
        """Record an import refused for a file-level problem: nothing of it is queued."""
        created = now_ms()
        pipe = self.r.pipeline()
        pipe.hset(keys.import_hash(import_id), mapping={
            "source": source, "created_ms": created, "status": "failed", "failure_code": code, "failure": message,
        })
        pipe.zadd(keys.IMPORTS_INDEX, {import_id: created})
        pipe.hincrby(keys.METRICS, "imports_created", 1)
        pipe.execute()

    def spec(self, import_id: str) -> ImportSpec:
        """The import's options (cached: they never change)."""
        spec = self._specs.get(import_id)
        if spec is None:
            raw = self.r.hget(keys.import_hash(import_id), "spec")
            if raw is None:
                raise ImportNotFound(f"no import {import_id!r} (unknown, or expired)")
            spec = self._specs[import_id] = ImportSpec.from_json(raw)
        return spec

    def state(self, import_id: str) -> dict[str, str]:
        """The import hash, decoded (empty when unknown)."""
        raw = self.r.hgetall(keys.import_hash(import_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def recent_imports(self, limit: int = 20) -> list[str]:
        """Ids of the newest imports, newest first."""
        return [i.decode() for i in self.r.zrevrange(keys.IMPORTS_INDEX, 0, limit - 1)]

    # -- chunks ------------------------------------------------------------------
    def put_chunk(self, import_id: str, chunk: int, payload: bytes, ttl_s: int) -> None:
        """Store a chunk's rows for its task; counts it as in flight and as pending work (for the sweeper)."""
        pipe = self.r.pipeline()  # MULTI: the rows are never stored without their pending entry
        pipe.set(keys.import_chunk(import_id, chunk), payload, ex=ttl_s)
        pipe.hincrby(keys.import_hash(import_id), "chunks_queued", 1)
        pipe.zadd(keys.PENDING, {keys.pending_member(import_id, chunk): now_ms()})
        pipe.execute()

    def in_flight(self, import_id: str) -> int:
        """Chunks of an import queued but not yet committed."""
        queued, done = self.r.hmget(keys.import_hash(import_id), "chunks_queued", "chunks_done")
        return int(queued or 0) - int(done or 0)

    def set_total(self, import_id: str, chunks: int) -> bool:
        """Record the number of chunks; True when all are already committed."""
        return bool(self._set_total(keys=[keys.import_hash(import_id), keys.PENDING],
                                    args=[chunks, now_ms(), keys.pending_member(import_id, keys.REPORT)]))

    def chunk_done(self, import_id: str, chunk: int) -> bool:
        """True when the chunk's commit already happened."""
        return bool(self.r.sismember(keys.import_done(import_id), chunk))

    def begin_try(self, import_id: str, chunk: int) -> int:
        """A delivery of ``chunk`` starts: its pending entry shows life; how many deliveries of it
        started without finishing, this one included (more than one: earlier ones killed their worker)."""
        pipe = self.r.pipeline()
        pipe.hincrby(keys.import_tries(import_id), chunk, 1)
        pipe.expire(keys.import_tries(import_id), SCRATCH_TTL_S)
        pipe.zadd(keys.PENDING, {keys.pending_member(import_id, chunk): now_ms()}, xx=True)
        return int(pipe.execute()[0])

    def end_try(self, import_id: str, chunk: int) -> None:
        """The delivery begun by :meth:`begin_try` finished (whatever its outcome): it did not kill its worker."""
        self.r.hincrby(keys.import_tries(import_id), chunk, -1)

    def stale_work(self, older_than_ms: int, limit: int = 1000) -> list[tuple[str, str]]:
        """Pending (import id, chunk number or "report") with no sign of life since ``older_than_ms``."""
        members = self.r.zrangebyscore(keys.PENDING, "-inf", older_than_ms, start=0, num=limit)
        return [tuple(m.decode().rsplit("/", 1)) for m in members]  # type: ignore[misc]

    def touch_work(self, import_id: str, part: int | str) -> bool:
        """Note that pending work was sent again now; False when it is no longer pending."""
        member = keys.pending_member(import_id, part)
        pipe = self.r.pipeline()
        pipe.zscore(keys.PENDING, member)
        pipe.zadd(keys.PENDING, {member: now_ms()}, xx=True)
        return pipe.execute()[0] is not None

    def drop_work(self, import_id: str, part: int | str) -> None:
        """Forget pending work that can never happen (its import expired)."""
        self.r.zrem(keys.PENDING, keys.pending_member(import_id, part))

    def load_chunk(self, import_id: str, chunk: int) -> bytes | None:
        """The chunk's rows as the producer stored them, or None once committed."""
        return self.r.get(keys.import_chunk(import_id, chunk))

    def all_done(self, import_id: str) -> bool:
        """True when every chunk is committed and the total is known."""
        total, done = self.r.hmget(keys.import_hash(import_id), "chunks_total", "chunks_done")
        return total is not None and int(total) == int(done or 0)

    # -- people and campaigns --------------------------------------------------------
    def existing_people(self, identifier: str, person_keys: list[str]) -> dict[str, str]:
        """The cio_id of each of ``person_keys`` the directory knows, in one round trip.

        In an id-only workspace an e-mail may name several people: "cio,cio".
        """
        if not person_keys:
            return {}
        found = self.r.hmget(keys.people_index(identifier), person_keys)
        return {key: cio.decode() for key, cio in zip(person_keys, found) if cio is not None}

    def add_person(self, identifier: str, value: str) -> str:
        """Create a person (or find them) and return their cio_id."""
        key = person_key(value, identifier)
        existing = self.r.hget(keys.people_index(identifier), key)
        if existing:
            return existing.decode()
        cio = f"{0xA0000000 + self.r.incr(keys.PEOPLE_SEQ):x}"
        if not self.r.hsetnx(keys.people_index(identifier), key, cio):
            return self.r.hget(keys.people_index(identifier), key).decode()
        self.r.hset(keys.person(cio), mapping={"cio_id": cio, identifier: value,
                                               "created_at": now_ms() // 1000, "_v": 1})
        return cio

    def person(self, identifier: str, value: str) -> dict[str, str] | None:
        """A person's stored fields, by id or e-mail (see :mod:`worker.people.directory` for the fields)."""
        return self.people.find(person_key(value, identifier), identifier)

    def campaigns(self) -> list[Campaign]:
        """Every campaign."""
        return [Campaign(**orjson.loads(v)) for v in self.r.hvals(keys.CAMPAIGNS)]

    def add_campaign(self, campaign: Campaign) -> None:
        """Create or replace a campaign by name."""
        self.r.hset(keys.CAMPAIGNS, campaign.name, orjson.dumps(dataclasses.asdict(campaign)))

    def remove_campaign(self, name: str) -> bool:
        """Delete a campaign; False when there was none of that name."""
        return bool(self.r.hdel(keys.CAMPAIGNS, name))

    # -- commit --------------------------------------------------------------------
    def commit(self, spec: ImportSpec, chunk: int, outcome: ChunkOutcome, *,
               at_ms: int, retention_s: int, failed: bool = False) -> CommitResult:
        """Commit a chunk's whole outcome atomically (see commit.lua); ``failed``: a chunk whose rows
        are all errors because it could not be processed."""
        iid = spec.import_id
        hour = at_ms // 3_600_000
        window_h = -(-spec.dedupe_window_s // 3600)
        args: list[object] = [
            chunk, "1" if spec.dry_run else "0", at_ms, hour, hour + window_h,
            keys.DEDUPE_PREFIX, keys.person(""), spec.identifier, iid,
            retention_s, keys.import_shadow(iid) if spec.dry_run else "", "1" if failed else "0",
            len(outcome.errors), *outcome.errors,
            len(outcome.warnings), *outcome.warnings,
            len(outcome.create),
        ]
        for pair in outcome.create:
            args.extend(pair)
        args.extend(_pack_events(outcome))
        committed, imported, duplicates, finalize = self._commit(keys=[
            keys.import_hash(iid), keys.import_done(iid), keys.import_chunk(iid, chunk),
            keys.import_errors(iid), keys.import_warnings(iid), keys.EVENTS_STREAM,
            keys.TRIGGERS_ZSET, keys.DELIVERIES_STREAM, keys.people_index(spec.identifier),
            keys.PEOPLE_SEQ, keys.PENDING, keys.METRICS,
        ], args=args)
        return CommitResult(bool(committed), int(imported), int(duplicates), bool(finalize))

    def observe_chunk(self, seconds: float) -> None:
        """Count one chunk's processing time in the shared histogram (worker/metrics.py)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hincrby(keys.CHUNK_SECONDS, bucket_of(seconds), 1)
        pipe.hincrbyfloat(keys.CHUNK_SECONDS, "sum", seconds)
        pipe.hincrby(keys.CHUNK_SECONDS, "count", 1)
        pipe.execute()

    def prune_dedupe(self, at_ms: int, batch: int = 500) -> int:
        """Remove expired dedupe marks from every shard (prune.lua); how many were removed."""
        now_h = at_ms // 3_600_000
        removed = 0
        shards = self.r.scan_iter(match=keys.DEDUPE_PREFIX + "*", count=1000)
        while True:
            pipe = self.r.pipeline(transaction=False)
            queued = 0
            for _, shard in zip(range(batch), shards):
                self._prune(keys=[shard], args=[now_h], client=pipe)
                queued += 1
            if queued == 0:  # (a pipeline is always truthy: count instead)
                return removed
            removed += sum(int(n) for n in pipe.execute())

    # -- report ----------------------------------------------------------------------
    def finalize(self, import_id: str, status: str, report: dict, retention_s: int) -> bool:
        """Write the report once; True for the call that wrote it."""
        hash_key, marker, *rest = keys.import_keys(import_id)
        wrote = bool(self._finalize(
            keys=[hash_key, marker, keys.PENDING, keys.METRICS, *rest],
            args=[status, orjson.dumps(report), now_ms(), retention_s, keys.pending_member(import_id, keys.REPORT)],
        ))
        if wrote:
            self.r.delete(keys.import_seen(import_id))  # a people import's memory of its rows: done with
        return wrote

    def problems(self, import_id: str, kind: str) -> Iterator[dict]:
        """Stored error (``kind="errors"``) or warning rows, in the order they were committed."""
        key = keys.import_errors(import_id) if kind == "errors" else keys.import_warnings(import_id)
        start, page = 0, 1000
        while True:
            batch = self.r.lrange(key, start, start + page - 1)
            for raw in batch:
                yield orjson.loads(raw)
            if len(batch) < page:
                return
            start += page

    # -- triggers --------------------------------------------------------------------------
    def move_due_triggers(self, at_ms: int, limit: int = 1000) -> int:
        """Move due scheduled triggers to the deliveries stream; how many moved."""
        return int(self._move_due(keys=[keys.TRIGGERS_ZSET, keys.DELIVERIES_STREAM], args=[at_ms, limit]))

    def scheduled(self) -> list[tuple[dict, float]]:
        """Every scheduled trigger and its due time (ms)."""
        return [(orjson.loads(m), s) for m, s in self.r.zrange(keys.TRIGGERS_ZSET, 0, -1, withscores=True)]

    def deliveries(self) -> list[dict]:
        """Every message in the deliveries stream (for inspection and tests)."""
        return [orjson.loads(f[b"message"]) for _, f in self.r.xrange(keys.DELIVERIES_STREAM)]

    def events(self, import_id: str | None = None) -> Iterable[dict]:
        """Events in the events stream, optionally of one import, in stream order."""
        last = "-"
        while True:
            entries = self.r.xrange(keys.EVENTS_STREAM, min=last, count=500)
            if last != "-":
                entries = entries[1:]
            if not entries:
                return
            for entry_id, fields in entries:
                if import_id is None or fields[b"import"].decode() == import_id:
                    yield from orjson.loads(fields[b"events"])
            last = entries[-1][0]
