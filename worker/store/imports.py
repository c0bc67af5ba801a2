"""Imports and their reports: the import hash, the index of recent imports, problem rows.

An import is one hash (``keys.import_hash``): its spec, status, counters and,
once written, its report. The report is written once (finalize.lua).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import redis

from worker import keys
from worker.errors import ImportNotFound
from worker.spec import ImportSpec
from worker.store import clock
from worker.store.lua import script
from worker.store.work import unknown_import


class Imports:
    """Creating, reading and finishing imports."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._finalize = client.register_script(script("finalize.lua"))
        self._stop = client.register_script(script("stop.lua"))
        self._specs: dict[str, ImportSpec] = {}

    def create(self, spec: ImportSpec, info: dict[str, object], retention_s: int) -> bool:
        """Record a new import (status ``queued``) before any chunk of it is queued. False, recording
        nothing, when the import was stopped (cancelled) while the service held it ``accepted``."""
        created = clock.now_ms(self.r)
        fields = {k: orjson.dumps(v) if not isinstance(v, (str, int, float, bytes)) else v
                  for k, v in info.items()}

        def record(pipe: Any) -> None:
            pipe.hset(keys.import_hash(spec.import_id), mapping={
                "spec": spec.to_json(), "status": "queued", "created_ms": created,
                "chunks_done": 0, **fields,
            })
            # Until finalize sets the real retention, a lost import still expires.
            pipe.expire(keys.import_hash(spec.import_id), retention_s)
            pipe.zadd(keys.IMPORTS_INDEX, {spec.import_id: created})
            pipe.zadd(keys.PRODUCING, {spec.import_id: created})
            pipe.hincrby(keys.METRICS, "imports_created", 1)

        return self._unless_stopped(spec.import_id, record)

    def _unless_stopped(self, import_id: str, record: Callable[[Any], None]) -> bool:
        """Run ``record(pipe)`` as one transaction unless the import has stopped or ended (a cancel of an
        ``accepted`` import wins over the scan that follows it, however they interleave)."""
        key = keys.import_hash(import_id)
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    if any(pipe.hmget(key, "stop", "report")):
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    record(pipe)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    def expect_rows(self, import_id: str, rows: int) -> None:
        """Count ``rows`` more rows expected (a stream of tracking calls learns its size as it goes)."""
        self.r.hincrby(keys.import_hash(import_id), "rows_expected", rows)

    def accept(self, import_id: str, source: str, retention_s: int) -> None:
        """Record an import the HTTP service took (status ``accepted``) before its file is scanned: its
        upload is on disk, or its data_file_url is being downloaded. :meth:`create` or :meth:`refuse` follows.
        Its producer is the service from now on: one that stops beating (a killed service) has the
        sweeper end the import as ``interrupted``."""
        created = clock.now_ms(self.r)
        pipe = self.r.pipeline()
        pipe.hset(keys.import_hash(import_id), mapping={"source": source, "created_ms": created, "status": "accepted"})
        pipe.expire(keys.import_hash(import_id), retention_s)
        pipe.zadd(keys.IMPORTS_INDEX, {import_id: created})
        pipe.zadd(keys.PRODUCING, {import_id: created})
        pipe.execute()

    def record_undo(self, import_id: str, done: dict[str, Any]) -> None:
        """Record what an undo of the import did (asked again, the undo answers this)."""
        self.r.hset(keys.import_hash(import_id), mapping={"undo": orjson.dumps(done), "undone_ms": done["undone_ms"]})

    def note_retry(self, import_id: str, retry_id: str) -> None:
        """Record on a finished import the latest import retrying its failed rows."""
        self.r.hset(keys.import_hash(import_id), "retried_by", retry_id)

    def refuse(self, import_id: str, source: str, code: str, message: str) -> bool:
        """Record an import refused for a file-level problem: nothing of it is queued. False, recording
        nothing, when it had already stopped (cancelled while ``accepted``: that is its end)."""
        created = clock.now_ms(self.r)

        def record(pipe: Any) -> None:
            pipe.hset(keys.import_hash(import_id), mapping={
                "source": source, "created_ms": created, "status": "failed", "failure_code": code, "failure": message,
            })
            pipe.zadd(keys.IMPORTS_INDEX, {import_id: created})
            pipe.zrem(keys.PRODUCING, import_id)
            pipe.hincrby(keys.METRICS, "imports_created", 1)

        return self._unless_stopped(import_id, record)

    def stop(self, import_id: str, reason: str) -> tuple[int, bool]:
        """Stop queueing the import (``reason``: "cancelled" or "interrupted"; see stop.lua): (1 stopped
        now, 0 already stopped or ended, -1 unknown; True when its report is now due)."""
        status, done = self._stop(keys=[keys.import_hash(import_id), keys.PENDING, keys.PRODUCING, keys.CLOSING],
                                  args=[reason, clock.now_ms(self.r), keys.pending_member(import_id, keys.REPORT), import_id])
        return int(status), bool(done)

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
        """The import hash, decoded (empty when unknown). A hash with no status is not an import: a stray
        counter written after Redis lost the import (a sink's, a late commit's) is unknown as well."""
        raw = self.r.hgetall(keys.import_hash(import_id))
        return {k.decode(): v.decode() for k, v in raw.items()} if b"status" in raw else {}

    def recent(self, limit: int = 20, retention_s: int | None = None) -> list[str]:
        """Ids of the newest imports that still exist, newest first. Entries of imports that expired
        are dropped from the index on the way (and, given ``retention_s``, every entry older than it)."""
        if retention_s is not None:
            self.r.zremrangebyscore(keys.IMPORTS_INDEX, "-inf", clock.now_ms(self.r) - retention_s * 1000)
        found: list[str] = []
        start = 0
        while len(found) < limit:
            ids = self.r.zrevrange(keys.IMPORTS_INDEX, start, start + limit - 1)
            if not ids:
                break
            pipe = self.r.pipeline(transaction=False)
            for i in ids:
                pipe.exists(keys.import_hash(i.decode()))
            alive = pipe.execute()
            gone = [i for i, present in zip(ids, alive) if not present]
            if gone:
                self.r.zrem(keys.IMPORTS_INDEX, *gone)
            found += [i.decode() for i, present in zip(ids, alive) if present]
            start += len(ids) - len(gone)
        return found[:limit]

    def finalize(self, import_id: str, status: str, report: dict[str, Any], retention_s: int, *, record: bool = True,
                 adopted: int = 0) -> bool | None:
        """Write the report once; True for the call that wrote it. With ``record`` (a real run), the
        import's record goes to the outbox in the same step, for the results database. None, writing
        nothing, when the import's ``adopted`` counter is no longer the one the report was built from (an
        undo left events to it meanwhile): build it again. Raises ImportNotFound for an import Redis does
        not know (no report is made up for it)."""
        hash_key, marker, *rest = keys.import_keys(import_id)
        finished = clock.now_ms(self.r)
        entry = orjson.dumps({
            "import_id": import_id, "status": status, "finished_ms": finished,
            "created_ms": int(self.r.hget(hash_key, "created_ms") or finished), "report": report,
        }) if record else b""
        wrote = int(self._finalize(
            keys=[hash_key, marker, keys.PENDING, keys.METRICS, keys.OUTBOX, *rest],
            args=[status, orjson.dumps(report), finished, retention_s, keys.pending_member(import_id, keys.REPORT),
                  keys.pending_member(import_id, keys.NOTIFY), import_id, entry, adopted],
        ))
        if wrote == -2:
            raise unknown_import(import_id)
        if wrote < 0:
            return None
        if wrote:
            # Done with: the import's memories of its rows (people: identifiers; events: event ids), and a
            # dry run's shadow dedupe marks and directory (shadow person records expire within a day).
            shadow = keys.import_shadow(import_id)
            self.r.delete(keys.import_seen(import_id), keys.import_event_ids(import_id),
                          *(shadow + name for name in keys.SHADOW_PARTS))
        return wrote == 1

    def problems(self, import_id: str, kind: str) -> Iterator[dict[str, Any]]:
        """Stored error (``kind="errors"``) or warning rows, chunk by chunk in file order."""
        for run in self.problem_runs(import_id, kind):
            yield from run

    def problem_runs(self, import_id: str, kind: str) -> Iterator[list[dict[str, Any]]]:
        """Stored error (``kind="errors"``) or warning rows as one list per chunk, in chunk order
        (rows within a run in the order they were found): one chunk's rows in memory at a time."""
        key = keys.import_errors(import_id) if kind == "errors" else keys.import_warnings(import_id)
        prefix = b"e" if kind == "errors" else b"w"
        # A Segment chunk's events step has runs of its own ("e12e" beside "e12"): one chunk, one run.
        runs = sorted((int(field[1:].rstrip(b"e")), field, value) for field, value in
                      self.r.hgetall(keys.import_problem_runs(import_id)).items() if field[:1] == prefix)
        for _, group in itertools.groupby(runs, key=lambda run: run[0]):
            rows: list[dict[str, Any]] = []
            for _, _, where in group:
                start, count = (int(n) for n in where.split(b":"))
                rows += [orjson.loads(raw) for raw in self.r.lrange(key, start, start + count - 1)]
            yield rows

    def problems_width(self, import_id: str, kind: str) -> int:
        """The most cells any stored error (or warning) row has."""
        return max((len(p["cells"]) for run in self.problem_runs(import_id, kind) for p in run), default=0)
