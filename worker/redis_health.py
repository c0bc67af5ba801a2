"""What backfill needs of its Redis, decided from what Redis says: pure, no I/O.

Two things break backfill's guarantees silently, so every process that writes checks them (the I/O
is :mod:`worker.store.guard`):

- a ``maxmemory-policy`` other than ``noeviction``: a full Redis then deletes keys (a chunk's rows, a
  done-set, a dedupe mark, an import) instead of refusing writes, and rows are lost or imported twice.
  It is read from ``INFO memory`` (managed Redis services often forbid CONFIG, never INFO);
- a Redis that lost its data (restarted without persistence, or flushed): the *epoch*, a random id and
  its creation time written once (SET NX) by the first process to meet the data, is gone or another.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime

#: The only memory policy backfill runs on: a full Redis refuses writes (they are retried), it never evicts.
NOEVICTION = "noeviction"


def eviction_problem(memory: Mapping[str, object]) -> str | None:
    """The one-line refusal for ``INFO memory`` fields whose ``maxmemory_policy`` evicts keys, or None
    (noeviction, or a Redis that does not say: nothing to go on)."""
    policy = str(memory.get("maxmemory_policy", "") or "")
    if not policy or policy == NOEVICTION:
        return None
    return (f"Redis's maxmemory-policy is {policy}: backfill needs noeviction (a full Redis would delete "
            "chunks, done-markers and dedupe marks, losing or doubling rows). Fix it with `redis-cli CONFIG SET "
            "maxmemory-policy noeviction` and `maxmemory-policy noeviction` in redis.conf (managed Redis: the "
            "parameter group's maxmemory-policy), then start again")


def persistence_warning(persistence: Mapping[str, object]) -> str | None:
    """A warning for ``INFO persistence`` fields of a Redis that keeps no append-only file, or None."""
    if str(persistence.get("aof_enabled", "1")) != "0":
        return None
    return ("Redis keeps no append-only file (appendonly no): a restart loses what was written since its last "
            "snapshot, or everything without one; set appendonly yes and appendfsync everysec")


@dataclasses.dataclass(frozen=True, slots=True)
class Epoch:
    """The data epoch: which incarnation of Redis's data a process met, and how many losses of Redis's
    data were found before it began (carried from one epoch to the next)."""

    id: str
    created_ms: int
    losses: int = 0

    @property
    def raw(self) -> str:
        """As stored in the epoch key."""
        return f"{self.id}:{self.created_ms}:{self.losses}"

    @classmethod
    def parse(cls, raw: bytes | str | None) -> Epoch | None:
        """The epoch stored as ``raw`` (None for no key, or a value not written by backfill)."""
        if raw is None:
            return None
        parts = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw).split(":")
        if len(parts) != 3 or not parts[0] or not (parts[1].isdigit() and parts[2].isdigit()):
            return None
        return cls(parts[0], int(parts[1]), int(parts[2]))


def data_lost(seen: Epoch | None, now: Epoch | None) -> bool:
    """True when the epoch a process met (``seen``) is no longer the one Redis holds (``now``, another id
    or none): Redis lost its data since. A process that met none yet (``seen`` None) cannot tell."""
    return seen is not None and (now is None or now.id != seen.id)


def lost_message() -> str:
    """The one line a process says once when it finds that Redis lost its data."""
    return ("Redis lost its data (it restarted without persistence, or was flushed): the imports it held are "
            "gone; their chunks end, commands waiting for them say so, new imports work. Give Redis an "
            "append-only file (appendonly yes) so a restart keeps its data")


def unknown_import(import_id: str, *, made_ms: int | None, epoch: Epoch | None, lost_here: bool,
                   now_ms: int, retention_s: int) -> str:
    """What to say of an import Redis does not know. ``made_ms``: when its id was made; ``epoch``: the one
    Redis holds now; ``lost_here``: this process saw Redis lose its data."""
    text = f"import {import_id} is unknown to Redis: lost or expired"
    if lost_here:
        return text + "; Redis lost its data meanwhile (restarted without persistence?)"
    if (made_ms is not None and epoch is not None and made_ms < epoch.created_ms
            and now_ms - made_ms < retention_s * 1000):
        # newer than its retention, older than Redis's data: it was there before Redis lost it
        began = datetime.fromtimestamp(epoch.created_ms / 1000, UTC).isoformat(timespec="seconds")
        return text + f"; Redis's data begins at {began}, after this import was made: Redis lost it"
    return text
