"""Host crash: Redis comes back from an AOF older than what the sink already stored.

With ``appendfsync everysec`` a host that loses power takes the last second or two of Redis's writes
with it: commits forgotten after their events were stored, their dedupe marks with them, and chunks
queued then forgotten. Emulated here by copying the append-only file while an import runs (when N
chunks are committed, or queued), killing redis-server with SIGKILL once M more are, putting the copy
back and starting Redis on it. Paced by progress, so the rollback spans the same work whatever the
machine's speed. The bar: the results database holds no event id twice, the import ends (never hangs
``running``), and its report says what happened (late duplicates, chunks lost).
"""
from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from worker import keys

from .harness import ROOT, Cluster, events_file, oracle
from .stored import Sinks


def _wait_for(cluster: Cluster, import_id: str, field: str, at_least: int, timeout: float = 120) -> int:
    """Until the import's counter ``field`` reaches ``at_least``; its value (0: it never did in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = int(cluster.client().hget(keys.import_hash(import_id), field) or 0)
        if value >= at_least:
            return value
        time.sleep(0.02)
    return 0


def _aof_files(directory: Path) -> list[Path]:
    """The append-only file(s): appendonly.aof (Redis 6) or the appendonlydir of Redis 7."""
    return sorted(directory.glob("appendonly*"))


def _copy_aof(directory: Path, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    for path in _aof_files(directory):
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, to / path.name)


def _restore_aof(copy: Path, directory: Path) -> None:
    for path in _aof_files(directory):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in copy.iterdir():
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, directory / path.name)


def _no_rewrites(cluster: Cluster) -> None:
    """No AOF rewrite while the copy is taken (a copy is then one consistent file, as on a disk)."""
    cluster.client().config_set("auto-aof-rewrite-percentage", 0)


def host_crash(base: Path, rows: int = 20_000, during: str = "commits", copy_at: int = 20, kill_after: int = 10) -> dict:
    """An import of ``rows`` rows with a sink running; the AOF copied when ``copy_at`` chunks are committed
    (``during="commits"``: every chunk queued first) or queued (``during="queueing"``: the producer paced by
    the workers), redis-server killed (SIGKILL) when ``kill_after`` more are, and started on the copy."""
    started = time.monotonic()
    counter = "chunks_done" if during == "commits" else "chunks_queued"
    settings = {"CHAOS_SLOW_MS": "60", "BACKFILL_MAX_INFLIGHT_CHUNKS": "1000" if during == "commits" else "6",
                "BACKFILL_PRODUCER_RETRY_S": "120"}
    with Cluster(base, settings=settings).start(2) as cluster:
        _no_rewrites(cluster)
        path = events_file(cluster.base, rows, seed=31 if during == "commits" else 32)
        expected = oracle(path, cluster.chunk_rows)
        sinks = Sinks(cluster, f"sqlite:///{base / 'results.db'}")
        sinks.start()
        producer = subprocess.Popen([sys.executable, "-m", "tests.chaos.produce", str(path)], env=cluster.env, cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            import_id = _import_id(cluster)
            if during == "commits":
                _wait_for(cluster, import_id, "chunks_total", 1)
            copied = _wait_for(cluster, import_id, counter, copy_at)
            if copied:
                _copy_aof(base / "redis", base / "aof-copy")
            killed_at = _wait_for(cluster, import_id, counter, copied + kill_after) if copied else 0
            stored_before = _stored(base, import_id)
            running = cluster.report(import_id) is None
            cluster.kill_redis()
            if copied:
                _restore_aof(base / "aof-copy", base / "redis")
            cluster.start_redis()
            _no_rewrites(cluster)
            cluster.supervise()
            if all(p.poll() is not None for p in sinks.processes):
                sinks.start()  # (a supervisor restarts a sink that gave up, as it does workers)
            rolled_back = int(cluster.client().hget(keys.import_hash(import_id), counter) or 0)
            # the faults promised: a rollback, over commits the sink had already stored
            faults = bool(copied and killed_at and running and rolled_back < killed_at and stored_before)
            report = cluster.wait_report(import_id, timeout=240)
            producer.wait(timeout=120)
            try:
                sinks.wait_stored(import_id)
            except AssertionError:
                counts = cluster.client().hmget(keys.import_hash(import_id), "outbox_entries", "outbox_stored", "outbox_dead")
                raise AssertionError(f"import {import_id} not stored: outbox entries, stored, dead {counts}; "
                                     f"pending {cluster.client().xpending(keys.OUTBOX, keys.SINK_GROUP)}") from None
            stored = _stored(base, import_id)
            state = {k.decode(): v.decode() for k, v in cluster.client().hgetall(keys.import_hash(import_id)).items()}
        finally:
            if producer.poll() is None:
                producer.kill()
            sinks.stop()
    doubled = sum(n - 1 for n in stored.values() if n > 1)
    late, lost_chunks, rows_lost = int(state.get("late_duplicates", 0)), report.get("chunks_lost", 0), report.get("rows_lost", 0)
    accounted = report["rows"] + rows_lost == expected.rows and \
        report["imported"] + report["duplicates"] + report["errors"] == report["rows"]
    if during == "commits":
        # every chunk is still stored or committed: the rolled-back commits are done again, so the counts
        # equal the oracle's and every event id is stored once
        ended = report["status"] in ("completed", "completed_with_errors") and not lost_chunks
        complete = set(stored) == expected.event_ids and (report["imported"], report["duplicates"], report["errors"]) \
            == (expected.imported, expected.duplicates, len(expected.error_rows))
    else:
        # chunks queued after the copy are lost: failed, counted; what they had committed before the
        # crash and the sink stored stays stored
        ended = report["status"] == "partially_failed" and lost_chunks > 0 and "import the file again" in report["resume"]
        complete = set(stored) <= expected.event_ids
    broke = (f"AOF copied at {copied} chunks {counter[7:]}, kill -9 at {killed_at}, rolled back to {rolled_back}; "
             f"{sum(stored_before.values())} events stored before the crash" if faults else
             f"COULD NOT MAKE ITS FAULTS (copied at {copied}, killed at {killed_at}: the import ended first)")
    ok = faults and doubled == 0 and ended and accounted and complete
    return {"scenario": f"host crash (AOF rolled back) during {during}", "broke": broke, "rows": expected.rows,
            "lost": rows_lost, "doubled": doubled, "late_duplicates": late, "chunks_lost": lost_chunks,
            "report": f"{report['status']}, {late} late duplicates not stored, {lost_chunks} chunks lost "
                      f"({rows_lost} rows), counted {'once' if accounted else 'WRONG'}",
            "status": report["status"], "seconds": round(time.monotonic() - started, 1), "ok": ok}


def _import_id(cluster: Cluster, timeout: float = 60) -> str:
    """The import the producer started (the only one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = cluster.client().zrange(keys.IMPORTS_INDEX, 0, -1)
        if found:
            return found[0].decode()
        time.sleep(0.02)
    raise RuntimeError("the producer started no import")


def _stored(base: Path, import_id: str) -> collections.Counter:
    """The event ids the results database holds for the import, each with how many times."""
    from worker.settings import Settings
    from worker.sink.results import open_results
    from worker.sink.stored import EventQuery

    results = open_results(Settings(database_url=f"sqlite:///{base / 'results.db'}"))
    try:
        return collections.Counter(e.event_id for e in results.events(EventQuery(import_id=import_id, limit=10**9)))
    finally:
        results.close()


def during_commits(base: Path) -> dict:
    return host_crash(base, during="commits")


def during_queueing(base: Path) -> dict:
    return host_crash(base, during="queueing")


ALL = [during_commits, during_queueing]
