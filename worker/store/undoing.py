"""What an undo holds and reads in Redis: its leases, the duplicates other imports counted, their counts.

Two leases (keys with a TTL the undo renews while it works, so one that dies lets go): keys.UNDO_LEASE
for the whole undo (one undo at a time), keys.UNDO_MARKS while it changes the dedupe memory (events
commits wait for it: commit.lua). The duplicates an events import counted are recorded by its commits
(keys.import_duplicates); :meth:`Undoing.traces` reads those an undo must look at.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import redis

from worker import keys

#: A lease lives this long unless renewed (every third of it) by the undo holding it.
LEASE_MS = 30_000
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"


class Undoing:
    """The Redis side of ``backfill undo`` beyond what it shares with commits (worker/store/events.py)."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    @contextlib.contextmanager
    def hold(self, key: str, holder: str, *, exclusive: bool) -> Iterator[str | None]:
        """Hold the lease ``key`` as ``holder`` for the block, renewed meanwhile. ``exclusive``: only if
        free; the block then gets who holds it instead (None: it is ours)."""
        if not self.r.set(key, holder, px=LEASE_MS, nx=exclusive):
            held_by = self.r.get(key)
            yield held_by.decode() if held_by else "another undo"
            return
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(LEASE_MS / 3000):
                try:
                    self._renew(keys=[key], args=[holder, LEASE_MS])
                except redis.RedisError:
                    continue  # (the next turn tries again; the lease lasts three turns)

        thread = threading.Thread(target=renew, name=f"lease {key}", daemon=True)
        thread.start()
        try:
            yield None
        finally:
            stop.set()
            thread.join()
            self._release(keys=[key], args=[holder])

    def traced_since(self, since_ms: int, retention_s: int, now_ms: int) -> list[str]:
        """The imports that counted duplicates since ``since_ms`` (entries past the retention are dropped:
        their records expired with it)."""
        self.r.zremrangebyscore(keys.TRACED, "-inf", f"({now_ms - retention_s * 1000}")
        return [i.decode() for i in self.r.zrangebyscore(keys.TRACED, since_ms, "+inf")]

    def traces(self, import_id: str) -> dict[bytes, bytes]:
        """commit.lua's records of what the import's chunks counted as duplicates (chunk -> record); empty
        when it recorded none, or they expired."""
        traces: dict[bytes, bytes] = self.r.hgetall(keys.import_duplicates(import_id))
        return traces

    def with_traces(self, import_ids: list[str]) -> set[str]:
        """Those of ``import_ids`` whose records of duplicates, and the import itself, are still there."""
        pipe = self.r.pipeline(transaction=False)
        for i in import_ids:
            pipe.exists(keys.import_duplicates(i), keys.import_hash(i))
        return {i for i, both in zip(import_ids, pipe.execute()) if both == 2}

    def undone(self, import_ids: list[str]) -> set[str]:
        """Those of ``import_ids`` taken back."""
        if not import_ids:
            return set()
        return {i for i, gone in zip(import_ids, self.r.smismember(keys.UNDONE, import_ids)) if gone}

    def keep(self, import_id: str, undone_id: str, count: int, patch: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None:
        """Count ``count`` events import ``import_id`` counted as duplicates of ``undone_id``'s as its own
        (imported, not duplicates; ``kept_from:<undone_id>`` and ``adopted`` in its hash), once: the undone
        import records it (``kept_by:<import_id>``), so an undo asked again changes nothing. A report
        already written is changed the same way by ``patch``. Its report as it now stands (None: it runs)."""
        key, gone = keys.import_hash(import_id), keys.import_hash(undone_id)
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key, gone)
                    raw = pipe.hget(key, "report")
                    if pipe.hexists(gone, f"kept_by:{import_id}"):
                        pipe.unwatch()
                        return orjson.loads(raw) if raw else None
                    report = patch(orjson.loads(raw)) if raw else None
                    pipe.multi()
                    pipe.hincrby(key, "imported", count)
                    pipe.hincrby(key, "duplicates", -count)
                    pipe.hincrby(key, "adopted", count)  # (finalize.lua builds a report again when it moved)
                    pipe.hset(key, f"kept_from:{undone_id}", count)
                    if report is not None:
                        pipe.hset(key, "report", orjson.dumps(report))
                    pipe.hset(gone, f"kept_by:{import_id}", count)
                    pipe.execute()
                    return report
                except redis.WatchError:
                    continue
