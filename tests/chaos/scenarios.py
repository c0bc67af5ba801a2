"""The reliability bar, one function per line of it. Each returns a row of the table.

``kills`` (or ``faults``) says how much to break; ``make chaos`` runs the full bar,
``make test`` smaller numbers. Every scenario runs a cluster of its own.
"""
from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from worker import keys

from .harness import Cluster, Expected, events_file, oracle, pace


def _row(name: str, broke: str, started: float, result: dict, *, complete: bool = True) -> dict:
    """A table row; ``complete`` is False when the import ended before all the harm was done: the row then
    fails for that reason of its own ("FAULTS NOT ALL MADE"), whatever its data says."""
    ok = (complete and result["lost"] == 0 and result["doubled"] == 0 and result["unexpected"] == 0
          and result["report_matches"] and result["report_runs"] == 1 and result["finished_lines"] >= 1
          and result.get("chunk_errors", True) and result.get("stored_ok", True))
    report = (f"{'equals the oracle' if result['report_matches'] else 'DIFFERS'}, written {result['report_runs']}x, "
              f"{result['status']}")
    if not complete:
        report = "FAULTS NOT ALL MADE (the import ended first); " + report
    if "stored_ok" in result:
        report += f"; database: people {'=' if result['people_equal'] else '!='} directory, record " + \
            ("stored" if result["record"] else "MISSING")
    return {"scenario": name, "broke": broke, **result, "report": report,
            "seconds": round(time.monotonic() - started, 1), "ok": ok}


def _start_import(cluster: Cluster, rows: int, seed: int, *, failed: frozenset[int] = frozenset(),
                  **options) -> tuple[Expected, str]:
    """A seeded file of ``rows`` rows, what the oracle expects of it, and its import, queued."""
    path = events_file(cluster.base, rows, seed=seed)
    return oracle(path, cluster.chunk_rows, failed), cluster.enqueue(path, **options)


def pool_child_kills(base: Path, kills: int = 20) -> dict:
    """SIGKILL a prefork pool child in the middle of a chunk ``kills`` times during one import."""
    started = time.monotonic()
    rng = random.Random(1)
    with Cluster(base, settings={"CHAOS_SLOW_MS": "150"}).start(2) as cluster:
        expected, import_id = _start_import(cluster, kills * 5000, 11)
        done, killed = 0, set()
        while done < kills and cluster.wait_progress(import_id, pace(len(expected.chunk_rows), kills, done)):
            time.sleep(rng.uniform(0.05, 0.15))
            children = cluster.busy([pid for w in cluster.alive_workers() for pid in cluster.pool_children(w)])
            children = [pid for pid in children if pid not in killed]  # (a killed child lingers until reaped)
            if children:
                victim = rng.choice(children)
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.add(victim)
                done += 1
        report = cluster.wait_report(import_id)
        mid_chunk = cluster.jobs_lost()
        return _row("pool child SIGKILL", f"{done} kills, {mid_chunk} mid-chunk", started, cluster.check(import_id, report, expected),
                    complete=done == kills)


def worker_kills(base: Path, kills: int = 10) -> dict:
    """SIGKILL a worker's main process (solo pool: it runs the chunk) in the middle of a chunk ``kills`` times;
    start a new worker each time."""
    started = time.monotonic()
    rng = random.Random(2)
    with Cluster(base, pool="solo", settings={"CHAOS_SLOW_MS": "100"}).start(2) as cluster:
        expected, import_id = _start_import(cluster, max(4000, kills * 5000), 12)
        done = 0
        while done < kills and cluster.wait_progress(import_id, pace(len(expected.chunk_rows), kills, done)):
            time.sleep(rng.uniform(0.05, 0.15))
            busy = cluster.busy([w.pid for w in cluster.alive_workers()])
            if not busy:
                continue
            chosen = rng.choice(busy)
            victim = next(w for w in cluster.alive_workers() if w.pid == chosen)
            cluster.stopped(victim)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            done += 1
            cluster.start_worker()
        report = cluster.wait_report(import_id, timeout=180)
        return _row("worker main SIGKILL", f"{done} kills", started, cluster.check(import_id, report, expected),
                    complete=done == kills)


def duplicate_publish(base: Path, rows: int = 20_000) -> dict:
    """Every chunk task published twice."""
    started = time.monotonic()
    with Cluster(base).start(2) as cluster:
        expected, import_id = _start_import(cluster, rows, 13, twice=True)
        report = cluster.wait_report(import_id)
        return _row("every task twice", "duplicate publish", started, cluster.check(import_id, report, expected))


def lost_messages(base: Path, rows: int = 20_000, every: int = 10) -> dict:
    """Every ``every``-th chunk task is never published: the sweeper must send those chunks."""
    started = time.monotonic()
    with Cluster(base).start(2) as cluster:
        expected, import_id = _start_import(cluster, rows, 17, drop_every=every)
        report = cluster.wait_report(import_id)
        result = cluster.check(import_id, report, expected)
        resent = cluster.log_count("chunk sent again")
        lost = len(expected.chunk_rows) // every
        return _row("lost messages", f"{lost} of {len(expected.chunk_rows)} tasks never sent, {resent} swept",
                    started, result, complete=resent >= lost)


def sigterm_shutdowns(base: Path, stops: int = 3) -> dict:
    """SIGTERM a worker in the middle of a chunk ``stops`` times (a deploy): it finishes the chunk, exits 0."""
    started = time.monotonic()
    rng = random.Random(5)
    with Cluster(base, pool="solo", settings={"CHAOS_SLOW_MS": "400"}).start(2) as cluster:
        expected, import_id = _start_import(cluster, max(4000, stops * 4000), 18)
        done, clean, finished = 0, 0, 0
        while done < stops and cluster.wait_progress(import_id, pace(len(expected.chunk_rows), stops, done)):
            time.sleep(rng.uniform(0.05, 0.15))
            busy = {int(p.name): p.read_text().split() for p in (cluster.base / "busy").iterdir()}
            victims = [w for w in cluster.alive_workers() if w.pid in busy]
            if not victims:
                continue
            victim = rng.choice(victims)
            _, chunk = busy[victim.pid]
            cluster.stopped(victim)
            victim.send_signal(signal.SIGTERM)
            clean += victim.wait(timeout=60) == 0
            finished += bool(cluster.client().sismember(keys.import_done(import_id), chunk))
            done += 1
            cluster.start_worker()
        report = cluster.wait_report(import_id, timeout=180)
        return _row("SIGTERM mid-chunk", f"{done} stops: {clean} exited 0, {finished} finished their chunk",
                    started, cluster.check(import_id, report, expected),
                    complete=done == stops == clean == finished)


def redis_kills(base: Path, kills: int = 5) -> dict:
    """kill -9 the redis-server mid-import ``kills`` times, restarting it on its AOF."""
    started = time.monotonic()
    rng = random.Random(4)
    with Cluster(base, settings={"CHAOS_SLOW_MS": "300"}).start(2) as cluster:
        expected, import_id = _start_import(cluster, max(24_000, kills * 8000), 14)
        done = 0
        while done < kills and cluster.wait_progress(import_id, pace(len(expected.chunk_rows), kills, done)):
            cluster.bounce_redis(rng, wait=False)
            done += 1
        report = cluster.wait_report(import_id, timeout=240)
        restarts = f", {cluster.restarts} workers restarted" if cluster.restarts else ""
        return _row("redis kill -9", f"{done} kills{restarts}", started, cluster.check(import_id, report, expected),
                    complete=done == kills)


def raising_chunk(base: Path, rows: int = 6000) -> dict:
    """One chunk raises an unexpected error: its rows become errors, the import ends."""
    started = time.monotonic()
    with Cluster(base, settings={"CHAOS_RAISE_CHUNK": "2"}).start(2) as cluster:
        expected, import_id = _start_import(cluster, rows, 15, failed=frozenset({2}))
        report = cluster.wait_report(import_id)
        result = cluster.check(import_id, report, expected)
        result["chunk_errors"] = _codes(cluster, import_id, expected.chunk_rows[2]) == {"chunk_failed"}
        return _row("one chunk raises", "chunk 2 raises", started, result)


def poison_chunk(base: Path, rows: int = 6000, tries: int = 3) -> dict:
    """One chunk kills its worker every time: after ``tries`` deaths its rows become errors."""
    started = time.monotonic()
    settings = {"CHAOS_POISON_CHUNK": "3", "BACKFILL_MAX_CHUNK_TRIES": str(tries)}
    with Cluster(base, settings=settings).start(2) as cluster:
        expected, import_id = _start_import(cluster, rows, 16, failed=frozenset({3}))
        report = cluster.wait_report(import_id)
        result = cluster.check(import_id, report, expected)
        result["chunk_errors"] = _codes(cluster, import_id, expected.chunk_rows[3]) == {"chunk_poison"}
        return _row("poison chunk", f"chunk 3 kills its worker, {tries} tries", started, result)


def full_redis(base: Path, rows: int = 40_000, seconds: float = 8.0) -> dict:
    """Redis runs out of memory (maxmemory, noeviction) in the middle of an import for ``seconds``: every
    script refuses before its first write, workers and the producer wait and retry, nothing is lost."""
    import threading

    started = time.monotonic()
    with Cluster(base, settings={"CHAOS_SLOW_MS": "50"}).start(2) as cluster:
        client = cluster.client()
        squeezed: list[bool] = []

        def squeeze() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = sum(int(client.hget(k, "chunks_done") or 0) for k in client.scan_iter(match="bf:imp:*")
                           if client.type(k) == b"hash" and client.hexists(k, "spec"))
                if done >= 5:
                    break
                time.sleep(0.05)
            client.config_set("maxmemory", client.info("memory")["used_memory"] + 64 * 1024)
            squeezed.append(True)
            time.sleep(seconds)
            client.config_set("maxmemory", 0)
            while not finished.is_set():  # a consumer refused by a full Redis exits: restart it, as systemd would
                cluster.supervise()
                time.sleep(0.5)

        finished = threading.Event()
        thread = threading.Thread(target=squeeze)
        thread.start()
        try:
            expected, import_id = _start_import(cluster, rows, 19)
            report = cluster.wait_report(import_id, timeout=240)
        finally:
            finished.set()
            thread.join()
        refused = cluster.log_count("OOM command not allowed")
        restarts = f", {cluster.restarts} workers restarted" if cluster.restarts else ""
        return _row("full Redis", f"maxmemory for {seconds:.0f} s, {refused} writes refused{restarts}", started,
                    cluster.check(import_id, report, expected), complete=bool(squeezed) and refused > 0)


def producer_killed(base: Path, rows: int = 60_000) -> dict:
    """The producer is SIGKILLed while it queues (the out-of-memory killer): the sweeper ends the import
    as interrupted once the producer has been silent for BACKFILL_PRODUCER_TIMEOUT_S; every queued row
    is imported once, the report says how many rows were never queued."""
    import subprocess
    import sys

    from .harness import ROOT

    started = time.monotonic()
    settings = {"CHAOS_SLOW_MS": "50", "BACKFILL_PRODUCER_TIMEOUT_S": "30"}
    with Cluster(base, settings=settings).start(2) as cluster:
        path = events_file(cluster.base, rows, seed=20)
        expected = oracle(path, cluster.chunk_rows)
        producer = subprocess.Popen([sys.executable, "-m", "tests.chaos.produce", str(path)], env=cluster.env,
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        client = cluster.client()
        deadline = time.monotonic() + 60
        while not client.zcard(keys.PRODUCING) and time.monotonic() < deadline:
            time.sleep(0.05)
        [import_id] = [m.decode() for m in client.zrange(keys.PRODUCING, 0, -1)]
        while int(client.hget(keys.import_hash(import_id), "chunks_queued") or 0) < 40:
            time.sleep(0.05)
        producer.kill()
        producer.wait()
        report = cluster.wait_report(import_id, timeout=240)
        result = cluster.check(import_id, report, expected)
        queued = report["rows"]
        ok = (report["status"] == "interrupted" and result["doubled"] == 0 and result["unexpected"] == 0
              and queued + report["rows_not_queued"] == expected.rows
              and report["imported"] + report["duplicates"] + report["errors"] == queued and 0 < queued < expected.rows)
        row = _row("producer SIGKILL", f"killed after {queued} rows queued, {report['rows_not_queued']} never queued",
                   started, {**result, "lost": 0, "report_matches": ok})
        row["report"] = f"interrupted: {queued} rows counted once, {report['rows_not_queued']} not queued"
        return row


def _codes(cluster: Cluster, import_id: str, rows: list[int]) -> set[str]:
    from worker.store import Store

    wanted = set(rows)
    problems = [p for p in Store(cluster.client()).imports.problems(import_id, "errors") if p["row"] in wanted]
    assert {p["row"] for p in problems} == wanted, "some rows of the failed chunk are not in the errors"
    return {code for p in problems for code in p["codes"]}


ALL = [pool_child_kills, worker_kills, sigterm_shutdowns, lost_messages, duplicate_publish, redis_kills,
       raising_chunk, poison_chunk, full_redis, producer_killed]
