"""Event commits: one chunk's whole outcome in one atomic step, and what it wrote.

:meth:`Events.commit` runs commit.lua (its arguments laid out by :mod:`worker.store.commit_args`, each named and commented there and in the script):
events, people created, dedupe marks, triggers, counters, problem rows, the
chunk's done-marker and its pending entry, all or nothing. The dedupe memory is
a set of hash shards (``keys.DEDUPE_PREFIX``); expired marks are pruned by beat.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

import orjson
import redis

from worker import keys
from worker.errors import TransientError
from worker.events.chunk import ChunkOutcome, expiry_hour
from worker.spec import ImportSpec
from worker.store.commit_args import CommitArgs, CommitKeys
from worker.store.lua import script
from worker.store.steps import CommitStep
from worker.store.work import SCRATCH_TTL_S, chunk_state, unknown_import

#: How long a commit waits for an undo that is changing the dedupe memory (it holds keys.UNDO_MARKS for
#: seconds, renewing it; one that died lets go within its TTL) before its task is retried.
UNDO_WAIT_S = 120


@dataclasses.dataclass(slots=True)
class CommitResult:
    """What one chunk commit did."""

    committed: bool
    imported: int
    duplicates: int
    finalize: bool
    #: the chunk was told wrongly whether its import used some of its event ids before (another chunk used
    #: them since, say): decide again, told :attr:`memory`
    conflict: bool = False
    #: on a conflict: what the import remembers of those ids (id field -> content digest and row; 12 zero
    #: bytes: nothing), to decide by
    memory: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    #: an anonymous id of the events this chunk would hold was tied to a person since it was read
    moved: bool = False


def _known_json(known: dict[str, str] | None) -> bytes:
    """commit.lua's map of the people found (an e-mail several people share names none of them: its
    events are refused)."""
    if not known:
        return b"{}"
    return orjson.dumps({key: cio for key, cio in known.items() if "," not in cio})


def mark_hour(value: bytes) -> int:
    """The expiry hour a dedupe mark holds (lib.lua's mark_hour: an event id's mark holds 16 bytes more)."""
    return int(value[:-16] if len(value) > 16 else value)


def _slot(key: bytes, shard_bits: int) -> tuple[bytes, bytes]:
    """(shard, field) of a dedupe key's mark, as lib.lua's dedupe_slot names them."""
    shard = keys.DEDUPE_PREFIX.encode() + key[:2]
    if shard_bits > 16:
        shard += bytes([key[2] >> (24 - shard_bits)])
    return shard, key[2:]


class Events:
    """Committing events chunks; the people lookup they need; the dedupe memory; the events stream."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._commit = client.register_script(script("commit.lua"))
        self._prune = client.register_script(script("prune.lua"))
        self._forget_person = client.register_script(script("forget_person.lua"))

    def existing_people(self, identifier: str, person_keys: list[str]) -> dict[str, str]:
        """The cio_id of each of ``person_keys`` the directory knows, in one round trip: what a chunk reads
        before it decides (what its import remembers of its event ids, the commit tells: commit.lua).

        In an id-only workspace an e-mail may name several people: "cio,cio".
        """
        if not person_keys:
            return {}
        found = self.r.hmget(keys.people_index(identifier), person_keys)
        return {key: cio.decode() for key, cio in zip(person_keys, found) if cio is not None}

    def commit(self, spec: ImportSpec, chunk: int, outcome: ChunkOutcome, *, at_ms: int, retention_s: int,
               failed: bool = False, cancelled: int = 0, shard_bits: int = 16,
               step: CommitStep = CommitStep.WHOLE, lost: bool = False,
               anonymous_ttl_s: int = 0, known: dict[str, str] | None = None,
               max_problem_rows: int = 0) -> CommitResult:
        """Commit a chunk's whole outcome atomically (see commit.lua); ``failed``: a chunk whose rows
        are all errors because it could not be processed (``lost``: whose rows were gone); ``cancelled``: the rows of a chunk skipped
        because its import was cancelled (the outcome is then empty); ``step``: :attr:`CommitStep.EVENTS` for
        the events step of a Segment chunk (its person step commits the chunk), whose events held for
        their anonymous ids are kept ``anonymous_ttl_s``; ``known``: the cio_id of each person the lookup found (person key
        -> cio_id), carried in the outbox entry with those the commit creates; ``max_problem_rows``: the
        most error (and warning) rows the import keeps (0: all)."""
        iid = spec.import_id
        script_keys = CommitKeys.of(iid, chunk, spec.identifier).layout()
        args = CommitArgs(
            member=step.member(chunk), dry_run=spec.dry_run, now_ms=at_ms, expiry_h=expiry_hour(at_ms, spec.dedupe_window_s),
            shard_bits=shard_bits, import_id=iid, identifier=spec.identifier,
            state=step.state(chunk_state(failed, cancelled, lost)), problem_ttl_s=retention_s,
            ids_ttl_s=SCRATCH_TTL_S, max_problem_rows=max_problem_rows, known=_known_json(known), outcome=outcome,
            anonymous_ttl_s=anonymous_ttl_s,
        ).layout()
        waited, pause = 0.0, 0.05
        while True:
            committed, imported, duplicates, finalize, *told = self._commit(keys=script_keys, args=args)
            if int(committed) != -3:
                break
            # An undo is changing the dedupe memory: this chunk's duplicates are decided after it.
            if waited >= UNDO_WAIT_S:
                raise TransientError(f"chunk {chunk}: an undo kept the dedupe memory for {UNDO_WAIT_S} s")
            time.sleep(pause)
            waited, pause = waited + pause, min(pause * 2, 1.0)
        if int(committed) == -4:
            raise unknown_import(iid)
        memory = {told[0][n:n + 8]: told[0][n + 8:n + 20] for n in range(0, len(told[0]), 20)} if told else {}
        return CommitResult(int(committed) == 1, int(imported), int(duplicates), bool(finalize),
                            conflict=int(committed) == -1, moved=int(committed) == -2, memory=memory)

    def forget_marks(self, dedupe_keys: Iterable[bytes], shard_bits: int) -> int:
        """Remove the dedupe marks of these keys (an import taken back); how many there were."""
        pipe = self.r.pipeline(transaction=False)
        queued = 0
        for key in dedupe_keys:
            pipe.hdel(*_slot(key, shard_bits))
            queued += 1
        return sum(int(n) for n in pipe.execute()) if queued else 0

    def keep_marks(self, expiry: dict[bytes, int], shard_bits: int) -> None:
        """Keep the marks of these keys until at least their hour (dedupe key -> expiry hour): events an
        undone import held that a later import also brought, whose window runs from that import's commit
        (a mark pruned meanwhile is written again). Only while keys.UNDO_MARKS holds the commits off."""
        slots = [(_slot(key, shard_bits), hour) for key, hour in expiry.items()]
        pipe = self.r.pipeline(transaction=False)
        for slot, _ in slots:
            pipe.hget(*slot)
        pipe_set = self.r.pipeline(transaction=False)
        for (slot, hour), now in zip(slots, pipe.execute()):
            if now is None or mark_hour(now) < hour:
                # (what an import remembers of an event id in the mark stays: lib.lua's mark_hour)
                pipe_set.hset(*slot, str(hour).encode() + (now[-16:] if now is not None and len(now) > 16 else b""))
        pipe_set.execute()

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

    def read(self, import_id: str | None = None) -> Iterable[dict[str, Any]]:
        """Events in the outbox (not yet trimmed by a sink), optionally of one import, in stream order."""
        for fields in self.entries():
            if fields.get(b"events") and (import_id is None or fields.get(b"import", b"").decode() == import_id):
                yield from map(orjson.loads, fields[b"events"].split(b"\n"))

    def entries(self) -> Iterable[dict[bytes, bytes]]:
        """Every outbox entry not yet trimmed by a sink, in stream order (their fields)."""
        last = "-"
        while True:
            entries = self.r.xrange(keys.OUTBOX, min=last, count=500)
            if last != "-":
                entries = entries[1:]
            if not entries:
                return
            for _, fields in entries:
                yield fields
            last = entries[-1][0]

    def forget_people(self, people: dict[str, tuple[str, str]]) -> list[str]:
        """Remove people (cio_id -> (identifier kind, directory key)) from the directory, each only while
        nothing changed it since it was created (its version is still 1); the cio_ids removed."""
        return [cio_id for cio_id, (kind, key) in people.items()
                if self._forget_person(keys=[keys.person(cio_id), keys.people_index(kind)], args=[key, cio_id])]
