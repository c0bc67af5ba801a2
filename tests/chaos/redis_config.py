"""The reliability bar's rows for a misconfigured Redis: one whose memory policy evicts keys, one that
lost its data.

``eviction_policy``: a Redis with ``maxmemory-policy allkeys-lru``. A worker, beat, ``backfill import``,
``backfill sink`` and ``backfill serve`` each refuse to start with the one line saying how to fix it (no
traceback), and nothing is recorded. Then, on a good Redis, the policy is switched to allkeys-lru in the
middle of an import (once a few chunks are committed): the producer stops queueing, the workers and the
sink stop writing and say why; switched back, the chunks left waiting are sent again by the sweeper, the
import ends ``interrupted`` with every queued row counted once, and the database holds each event once.

``data_lost``: Redis is killed mid-import (once a few chunks are committed and the sink stored some) and
started again without its data. ``backfill import --wait`` ends non-zero with one line saying the import is
unknown to Redis (no traceback), ``backfill report`` says so too (never "still running"), the sink creates
its consumer group again and stores a new import exactly once, and backfill_redis_data_lost_total counts
the loss (the BackfillRedisDataLost alert's metric).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from worker import keys
from worker.store.embedded import free_port, start_private

from .harness import ROOT, Cluster, events_file, oracle
from .stored import Sinks

#: What the one-line refusal of a Redis that evicts starts with.
REFUSAL = "Redis's maxmemory-policy is allkeys-lru: backfill needs noeviction"
UNKNOWN = "unknown to Redis: lost or expired"


def _row(name: str, broke: str, started: float, rows: int, report: str, ok: bool, **extra) -> dict:
    return {"scenario": name, "broke": broke, "rows": rows, "lost": extra.pop("lost", 0),
            "doubled": extra.pop("doubled", 0), "report": report, "seconds": round(time.monotonic() - started, 1),
            "ok": ok, **extra}


def _one_line(output: str, text: str) -> bool:
    """``text`` said on exactly one line of ``output``, and no traceback."""
    return sum(text in line for line in output.splitlines()) == 1 and "Traceback" not in output


def _chunks_done(client, import_id: str) -> int:
    return int(client.hget(keys.import_hash(import_id), "chunks_done") or 0)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def eviction_policy(base: Path, rows: int = 40_000) -> dict:
    """Every process refuses a Redis that evicts, at start and while it works; nothing is imported wrongly."""
    started = time.monotonic()
    refused, refusals = _refused_at_start(base / "start")
    stopped = _refused_mid_import(base / "mid", rows)
    ok = refused == refusals and stopped["ok"]
    report = (f"{refused}/{refusals} refused to start in one line; mid-import: {stopped['report']}")
    return _row("eviction policy", f"allkeys-lru at start, then mid-import ({stopped['broke']})", started,
                stopped["rows"], report, ok, doubled=stopped["doubled"], lost=0)


def _refused_at_start(base: Path) -> tuple[int, int]:
    """(processes that refused in one line, processes started) on a Redis with allkeys-lru."""
    base.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(base)
    try:
        cluster.start_redis()
        client = cluster.client()
        client.config_set("maxmemory-policy", "allkeys-lru")
        sinks = Sinks(cluster, f"sqlite:///{base / 'results.db'}")
        path = events_file(base, 1000, seed=31)
        commands = [
            [sys.executable, "-m", "celery", "-A", "worker.app", "beat", "-s", str(base / "beat-schedule")],
            [sinks.exe, "import", str(path)], [sinks.exe, "sink"], [sinks.exe, "serve", "--port", str(free_port())],
        ]
        worker = cluster.start_worker()
        worker.wait(timeout=60)
        refused = worker.returncode != 0 and _one_line(cluster.logs(), REFUSAL)
        for command in commands:
            done = subprocess.run(command, env=sinks.env, capture_output=True, cwd=ROOT, timeout=60)
            refused += done.returncode != 0 and _one_line((done.stdout + done.stderr).decode(errors="replace"), REFUSAL)
        nothing = not any(client.scan_iter(match=keys.import_hash("*")))
        return refused if nothing else 0, len(commands) + 1
    finally:
        cluster.stop()


def _refused_mid_import(base: Path, rows: int) -> dict:
    """The policy switched to allkeys-lru mid-import, then back."""
    base.mkdir(parents=True, exist_ok=True)
    # few chunks in flight: the producer is still queueing, whatever the machine's speed, when the policy turns
    settings = {"CHAOS_SLOW_MS": "100", "BACKFILL_REDIS_CHECK_S": "0.5", "BACKFILL_MAX_INFLIGHT_CHUNKS": "8"}
    with Cluster(base, settings=settings).start(2) as cluster:
        sinks = Sinks(cluster, f"sqlite:///{base / 'results.db'}")
        sinks.start()
        path = events_file(base, rows, seed=32)
        expected = oracle(path, cluster.chunk_rows)
        producer = subprocess.Popen([sinks.exe, "import", str(path), "--create-people"], env=cluster.env, cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        client = cluster.client()
        try:
            _wait_for(lambda: client.zcard(keys.PRODUCING), 60, "the producer records its import")
            [import_id] = [m.decode() for m in client.zrange(keys.PRODUCING, 0, -1)]
            _wait_for(lambda: _chunks_done(client, import_id) >= 5, 120, "5 chunks committed")
            producing = not client.hexists(keys.import_hash(import_id), "chunks_total")
            at_switch = _chunks_done(client, import_id)
            client.config_set("maxmemory-policy", "allkeys-lru")
            out, err = producer.communicate(timeout=60)
            time.sleep(3)  # every process checks within 0.5 s; chunks in hand finish
            held = (_chunks_done(client, import_id), client.hget(keys.import_hash(import_id), "outbox_stored"))
            time.sleep(3)
            still = held == (_chunks_done(client, import_id), client.hget(keys.import_hash(import_id), "outbox_stored"))
            said = {"producer": err.decode(errors="replace").count(REFUSAL) >= 1,
                    "workers": cluster.log_count(REFUSAL) >= 1,
                    "sink": REFUSAL in (base / "sink0.log").read_text(errors="replace")}
            client.config_set("maxmemory-policy", "noeviction")
            report = cluster.wait_report(import_id, timeout=240)
            result = sinks.check(import_id, report, expected)
        finally:
            if producer.poll() is None:
                producer.kill()
            sinks.stop()
    queued, not_queued = report["rows"], report.get("rows_not_queued", 0)
    counted = (report["status"] == "interrupted" and queued + not_queued == expected.rows
               and report["imported"] + report["duplicates"] + report["errors"] == queued and 0 < queued < expected.rows)
    ok = producing and still and all(said.values()) and counted and result["doubled"] == 0 \
        and result["unexpected"] == 0 and result["report_runs"] == 1
    silent = ", ".join(name for name, yes in said.items() if not yes)
    return {"ok": ok, "rows": expected.rows, "doubled": result["doubled"],
            "broke": f"switched after {at_switch} chunks" + ("" if producing else ", PRODUCER HAD ALREADY ENDED"),
            "report": (f"writes {'stopped' if still else 'WENT ON'}, " + (f"{silent} SILENT, " if silent else "")
                       + f"{report['status']}: {queued} rows counted once, {not_queued} not queued")}


def data_lost(base: Path, rows: int = 40_000) -> dict:
    """Redis restarted without its data mid-import: one line, no traceback, the sink goes on."""
    from worker.ops.metrics import RedisCollector

    started = time.monotonic()
    settings = {"CHAOS_SLOW_MS": "150", "BACKFILL_REDIS_CHECK_S": "1"}
    with Cluster(base, settings=settings).start(2) as cluster:
        sinks = Sinks(cluster, f"sqlite:///{base / 'results.db'}")
        sinks.start()
        path = events_file(base, rows, seed=33)
        waiting = subprocess.Popen([sinks.exe, "import", str(path), "--create-people", "--wait"], env=sinks.env,
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        client = cluster.client()
        try:
            _wait_for(lambda: client.zcard(keys.PRODUCING), 60, "the producer records its import")
            [import_id] = [m.decode() for m in client.zrange(keys.PRODUCING, 0, -1)]
            _wait_for(lambda: _chunks_done(client, import_id) >= 5
                      and client.hget(keys.import_hash(import_id), "outbox_stored"), 120, "5 chunks committed and stored")
            done_before = _chunks_done(client, import_id)
            running = client.hget(keys.import_hash(import_id), "report") is None
            cluster.kill_redis()
            cluster.redis, _ = start_private(base / "redis-empty", port=cluster.port, aof=True)  # no data to load
            cluster.supervise()
            out, err = waiting.communicate(timeout=120)
            said = err.decode(errors="replace")
            cli_ok = waiting.returncode not in (0, 3) and _one_line(said, UNKNOWN)
            asked = subprocess.run([sinks.exe, "report", import_id], env=sinks.env, capture_output=True, cwd=ROOT,
                                   timeout=60)
            asked_said = asked.stderr.decode(errors="replace")
            report_ok = asked.returncode == 1 and _one_line(asked_said, UNKNOWN) and "still running" not in asked_said
            if all(p.poll() is not None for p in sinks.processes):
                sinks.start()  # (a supervisor restarts a sink that gave up, as it does workers)
            fresh = events_file(base, 4000, seed=34)
            expected = oracle(fresh, cluster.chunk_rows)
            new_id = cluster.enqueue(fresh)
            result = sinks.check(new_id, cluster.wait_report(new_id, timeout=120), expected)
            counted = next(s.value for family in RedisCollector(cluster.client()).collect() for s in family.samples
                           if s.name == "backfill_redis_data_lost_total")
        finally:
            if waiting.poll() is None:
                waiting.kill()
            sinks.stop()
        logs = cluster.logs() + "".join(p.read_text(errors="replace") for p in base.glob("sink*.log"))
        # backfill's own lines hold no traceback; Celery's "Couldn't ack" at the moment Redis is killed does
        # (its connection went while a task was being acknowledged: the message is delivered again)
        loud = next((line for line in logs.splitlines() if "Traceback" in line and "Couldn't ack" not in line), "")
        quiet = not loud and logs.count("consumer group is gone") <= 2
        noise = "" if quiet else f" ({logs.count('consumer group is gone')} group lines; {loud[:200]})"
    # (people are not compared: the directory was lost, and the people sequence starts again with it, so the
    # database's people of the lost import share cio_ids with the new one's; the README says so)
    stored = result["lost"] == result["doubled"] == result["unexpected"] == 0 and result["report_matches"] \
        and result["record"]
    ok = running and cli_ok and report_ok and counted >= 1 and quiet and stored
    report = (f"--wait: {'one line' if cli_ok else 'NOT ONE LINE: ' + said[-300:]}, exit {waiting.returncode}; "
              f"report: {'unknown' if report_ok else 'WRONG: ' + asked_said[-200:]}; new import "
              f"{'stored once' if stored else 'NOT STORED ONCE'}; "
              f"alert metric {counted:.0f}" + ("" if quiet else "; TRACEBACK OR NOGROUP LOOP IN THE LOGS" + noise))
    return _row("data lost", f"Redis restarted empty after {done_before} chunks"
                + ("" if running else ", IMPORT HAD ALREADY ENDED"), started, rows + 4000, report, ok,
                doubled=result["doubled"], lost=result["lost"])


ALL = [eviction_policy, data_lost]
