"""Chunks and pending work: a chunk's stored rows, its deliveries, and what must still happen.

The producer stores each chunk (a CSV file's own text, :mod:`worker.raw`; rows as orjson
otherwise) under its own key and sends only the key's coordinates through the queue; the
chunk's commit deletes them. Every
stored chunk, and every report due, is a member of the pending-work set
(``keys.PENDING``), scored by its last sign of life, for the sweeper
(:mod:`worker.ops.sweeper`).
"""
from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import orjson
import redis

from worker import keys
from worker.errors import ImportNotFound
from worker.raw import is_raw, parse_raw, read_raw
from worker.store import clock
from worker.store.lua import script
from worker.store.steps import CommitStep

#: Life of an import's scratch keys (its memory of seen identifiers, a dry run's shadow people, the
#: count of its deliveries), renewed at every write: they serve only while the import runs.
SCRATCH_TTL_S = 86_400


def encode_rows(rows: list[list[str]], numbers: list[int]) -> bytes:
    """The stored form of a chunk: row numbers spelled out only when not contiguous."""
    data: dict[str, Any] = {"first_row": numbers[0], "rows": rows}
    if numbers[-1] - numbers[0] != len(numbers) - 1:
        data["row_numbers"] = numbers
    return orjson.dumps(data)


def decode_rows(raw: bytes) -> tuple[list[list[str]], list[int]]:
    """Records and row numbers of a stored chunk: rows (see :func:`encode_rows`), or a CSV file's own text
    (:mod:`worker.raw`), parsed as the producer read it."""
    if is_raw(raw):
        return parse_raw(read_raw(raw))
    payload = orjson.loads(raw)
    rows = payload["rows"]
    numbers = payload.get("row_numbers")
    if numbers is None:
        first = payload["first_row"]
        numbers = list(range(first, first + len(rows)))
    return rows, numbers


def chunk_state(failed: bool, cancelled: int, lost: bool = False) -> str:
    """The commit scripts' chunk-state argument (see lib.lua: chunk_state); ``lost``: a failed chunk whose rows
    could not be read (gone: expired, or lost by a Redis rolled back)."""
    return f"c{cancelled}" if cancelled else ("l" if lost else "1" if failed else "0")


@dataclasses.dataclass(slots=True)
class StoredChunk:
    """A chunk's records as the producer stored them, and whether its import was cancelled since."""

    rows: list[list[str]]
    numbers: list[int]
    cancelled: bool
    #: Redis's clock when they were read (Unix seconds): the chunk's "now", the same on every worker
    now: float = 0.0


@dataclasses.dataclass(slots=True)
class Room:
    """What the producer checks before each chunk: chunks waiting uncommitted, and a stop."""

    in_flight: int
    #: "cancelled" or "interrupted" once the import stopped, else ""
    stop: str
    #: outbox entries not yet stored by a sink (the outbox is trimmed as they are)
    outbox: int = 0
    #: chunks of every import stored and not committed yet: each adds (at most) one outbox entry
    chunks_pending: int = 0

    def outbox_due(self) -> int:
        """What the outbox holds and will hold once the chunks in flight commit: what its limit bounds."""
        return self.outbox + self.chunks_pending


class Work:
    """Stored chunks, their deliveries, and the pending-work set."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._set_total = client.register_script(script("set_total.lua"))
        self._put_chunk = client.register_script(script("put_chunk.lua"))
        self._room = client.register_script(script("room.lua"))

    # -- chunks ----------------------------------------------------------------------
    def put_chunk(self, import_id: str, chunk: int, rows: list[list[str]], numbers: list[int], ttl_s: int) -> bool:
        """Store a chunk's rows for its task; counts it as in flight and as pending work (for the sweeper),
        and as the producer's heartbeat. False (nothing stored) once the import has stopped (put_chunk.lua);
        ImportNotFound when Redis does not know it (it lost its data)."""
        return self.put_encoded(import_id, chunk, encode_rows(rows, numbers), numbers[-1], ttl_s)

    def put_encoded(self, import_id: str, chunk: int, payload: bytes, last_row: int, ttl_s: int) -> bool:
        """:meth:`put_chunk` of a chunk already encoded (:func:`encode_rows`), whose last row is ``last_row``."""
        stored = int(self._put_chunk(
            keys=[keys.import_chunk(import_id, chunk), keys.import_hash(import_id), keys.PENDING, keys.PRODUCING],
            args=[payload, ttl_s, clock.now_ms(self.r), keys.pending_member(import_id, chunk), import_id, last_row]))
        if stored == -1:
            raise unknown_import(import_id)
        return stored == 1

    def load(self, import_id: str, chunk: int) -> StoredChunk | None:
        """The chunk's records, whether its import was cancelled and Redis's clock (the chunk's now), in one
        round trip; None once committed. ImportNotFound when Redis does not know the import (it lost its
        data, or it expired)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.get(keys.import_chunk(import_id, chunk))
        pipe.hmget(keys.import_hash(import_id), "stop", "spec")
        sent = clock.add_time(pipe)
        raw, (stop, spec), time_reply = pipe.execute()
        if spec is None:
            raise unknown_import(import_id)
        now = clock.read_time(self.r, time_reply, sent)
        if raw is None:
            return None
        rows, numbers = decode_rows(raw)
        return StoredChunk(rows, numbers, stop == b"cancelled", now)

    def cancelled(self, import_id: str) -> bool:
        """Whether the import was cancelled (what :meth:`load` tells, for a chunk whose rows were read before)."""
        return bool(self.r.hget(keys.import_hash(import_id), "stop") == b"cancelled")

    def heartbeat(self, import_id: str) -> None:
        """The producer is alive (while it waits for room, between chunks)."""
        self.r.zadd(keys.PRODUCING, {import_id: clock.now_ms(self.r)}, xx=True)

    def last_beat(self, import_id: str) -> float | None:
        """When the import's producer last showed life (ms), or None when none is producing it."""
        beat: float | None = self.r.zscore(keys.PRODUCING, import_id)
        return beat

    def room(self, import_id: str) -> Room:
        """Chunks of the import waiting uncommitted, whether it has stopped, the outbox's length and the
        chunks of every import in flight (room.lua)."""
        queued, done, stop, outbox, pending = self._room(keys=[keys.import_hash(import_id), keys.OUTBOX, keys.PENDING])
        return Room(int(queued) - int(done), stop.decode() if isinstance(stop, bytes) else stop, int(outbox),
                    int(pending))

    def sinks(self) -> int:
        """How many sinks are running (seen within :data:`keys.SINK_ALIVE_MS`); those silent a day are forgotten."""
        now = clock.now_ms(self.r)
        pipe = self.r.pipeline(transaction=False)
        pipe.zremrangebyscore(keys.SINKS, "-inf", now - 86_400_000)
        pipe.zcount(keys.SINKS, now - keys.SINK_ALIVE_MS, "+inf")
        return int(pipe.execute()[1])

    def say_waiting(self, import_id: str, why: str) -> None:
        """Record why the import's producer waits ("" once it goes on), for status and top."""
        if why:
            self.r.hset(keys.import_hash(import_id), "waiting", why)
        else:
            self.r.hdel(keys.import_hash(import_id), "waiting")

    def silent_producers(self, older_than_ms: int, limit: int = 100) -> list[str]:
        """Imports whose producer has shown no sign of life since ``older_than_ms``."""
        return [i.decode() for i in self.r.zrangebyscore(keys.PRODUCING, "-inf", older_than_ms, start=0, num=limit)]

    def load_chunk(self, import_id: str, chunk: int) -> tuple[list[list[str]], list[int]] | None:
        """The chunk's records and row numbers as the producer stored them, or None once committed."""
        raw = self.r.get(keys.import_chunk(import_id, chunk))
        return None if raw is None else decode_rows(raw)

    def has_rows(self, import_id: str, chunk: int) -> bool:
        """True while the chunk's rows are stored (until its commit, or their expiry)."""
        return bool(self.r.exists(keys.import_chunk(import_id, chunk)))

    def set_total(self, import_id: str, chunks: int) -> bool:
        """Record the number of chunks; True when all are already committed. ImportNotFound when Redis does
        not know the import (it lost its data)."""
        done = int(self._set_total(keys=[keys.import_hash(import_id), keys.PENDING, keys.PRODUCING, keys.CLOSING],
                                   args=[chunks, clock.now_ms(self.r), keys.pending_member(import_id, keys.REPORT),
                                         import_id]))
        if done == -1:
            raise unknown_import(import_id)
        return done == 1

    def chunk_done(self, import_id: str, chunk: int, step: CommitStep = CommitStep.WHOLE) -> bool:
        """True when the chunk's commit (``step``: that step of a Segment chunk) already happened."""
        return bool(self.r.sismember(keys.import_done(import_id), step.member(chunk)))

    def all_done(self, import_id: str) -> bool:
        """True when every chunk is committed and the total is known."""
        total, done = self.r.hmget(keys.import_hash(import_id), "chunks_total", "chunks_done")
        return total is not None and int(total) == int(done or 0)

    # -- deliveries ------------------------------------------------------------------
    def begin_try(self, import_id: str, chunk: int) -> tuple[int, str]:
        """A delivery of ``chunk`` starts: its pending entry shows life, and it leaves a mark that
        :meth:`end_try` removes. Returns (how many marks of earlier deliveries of the chunk are left,
        i.e. deliveries that took their worker down with them; this delivery's token)."""
        token = secrets.token_hex(4)
        pipe = self.r.pipeline()
        pipe.hset(keys.import_tries(import_id), f"{chunk}:{token}", 1)
        pipe.expire(keys.import_tries(import_id), SCRATCH_TTL_S)
        pipe.zadd(keys.PENDING, {keys.pending_member(import_id, chunk): clock.now_ms(self.r)}, xx=True)
        pipe.hkeys(keys.import_tries(import_id))  # (as many fields as deliveries in flight or dead)
        marks = pipe.execute()[3]
        prefix = f"{chunk}:".encode()
        return sum(1 for m in marks if m.startswith(prefix)) - 1, token

    def end_try(self, import_id: str, chunk: int, token: str) -> None:
        """The delivery begun by :meth:`begin_try` finished (whatever its outcome): it did not kill its
        worker. HDEL, which Redis runs even when its memory is full: a full Redis is no death."""
        self.r.hdel(keys.import_tries(import_id), f"{chunk}:{token}")

    # -- pending work ----------------------------------------------------------------
    def stale(self, older_than_ms: int, limit: int = 1000) -> list[tuple[str, str]]:
        """Pending (import id, chunk number or "report") with no sign of life since ``older_than_ms``."""
        members = self.r.zrangebyscore(keys.PENDING, "-inf", older_than_ms, start=0, num=limit)
        return [tuple(m.decode().rsplit("/", 1)) for m in members]

    def touch(self, import_id: str, part: int | str) -> bool:
        """Note that pending work was sent again now; False when it is no longer pending."""
        member = keys.pending_member(import_id, part)
        pipe = self.r.pipeline()
        pipe.zscore(keys.PENDING, member)
        pipe.zadd(keys.PENDING, {member: clock.now_ms(self.r)}, xx=True)
        return pipe.execute()[0] is not None

    def closing(self, older_than_ms: int, limit: int = 100) -> list[str]:
        """Imports whose chunks are all queued, not checked since ``older_than_ms`` (:meth:`lost_chunks`)."""
        return [i.decode() for i in self.r.zrangebyscore(keys.CLOSING, "-inf", older_than_ms, start=0, num=limit)]

    def lost_chunks(self, import_id: str) -> list[int]:
        """The chunks of an import whose chunks are all queued that Redis lost: neither committed, pending nor
        stored, which only a Redis rolled back (a host crash, an AOF synced every second) leaves. An import
        that ended (or expired) leaves the closing set; one that runs is checked again later."""
        total, report = self.r.hmget(keys.import_hash(import_id), "chunks_total", "report")
        if total is None or report is not None:
            self.r.zrem(keys.CLOSING, import_id)
            return []
        self.r.zadd(keys.CLOSING, {import_id: clock.now_ms(self.r)}, xx=True)
        chunks = range(int(total))
        # Pending and stored first, committed last: a chunk that commits meanwhile is seen committed.
        pipe = self.r.pipeline(transaction=False)
        for chunk in chunks:
            pipe.zscore(keys.PENDING, keys.pending_member(import_id, chunk))
            pipe.exists(keys.import_chunk(import_id, chunk))
        found = pipe.execute()
        done = self.r.smembers(keys.import_done(import_id))
        return [c for c in chunks if found[2 * c] is None and not found[2 * c + 1] and str(c).encode() not in done]

    def drop(self, import_id: str, part: int | str) -> None:
        """Forget pending work that can never happen (its import expired)."""
        self.r.zrem(keys.PENDING, keys.pending_member(import_id, part))


def unknown_import(import_id: str) -> ImportNotFound:
    """The error of a store call on an import Redis does not know (lost with its data, or expired)."""
    return ImportNotFound(f"no import {import_id!r} (unknown to Redis: lost or expired)")
