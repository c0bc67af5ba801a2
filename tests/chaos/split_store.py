"""The reliability bar's row for a multi-host deployment that forgot its DATABASE_URL ("split-store").

Two workers on one Redis, each with its own home and no DATABASE_URL, each meaning to run a sink into
the SQLite file of its home: the results would be split between the two files while every report said
"stored". The first worker's sink registers its store in Redis; the second host refuses: `backfill
worker` does not start (its one line names both stores), and a worker started with plain `celery`
and the sink turned on (BACKFILL_WORKER_SINK=1) processes chunks but its sink does not start, saying
the same. The import's chunks are committed by both workers (paced: each must commit some, chunks
slowed by CHAOS_SLOW_MS), every event is stored once in the first store, none in the second, and the
report's claim that everything is stored is true.
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
from .scenarios import _row

EXE = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"


def _host(cluster: Cluster, name: str) -> dict[str, str]:
    """A host's environment: the cluster's Redis, a home of its own, no DATABASE_URL."""
    env = {k: v for k, v in cluster.env.items() if k != "DATABASE_URL"}
    return {**env, "BACKFILL_HOME": str(cluster.base / name)}


def _worker(cluster: Cluster, env: dict[str, str], index: int, command: list[str]) -> subprocess.Popen:
    log = open(cluster.base / f"worker{index}.log", "wb")
    process = subprocess.Popen([*command, "-I", "tests.chaos.faults", "-n", f"split{index}@%h", "--without-mingle",
                                "--without-gossip"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    cluster.workers.append(process)
    return process


def _chunks_done(cluster: Cluster, index: int) -> int:
    path = cluster.base / f"worker{index}.log"
    return path.read_text(errors="replace").count('"chunk done"') if path.exists() else 0


def split_store(base: Path, rows: int = 20_000) -> dict:
    """Two hosts' workers with sinks into stores of their own: the second refuses; nothing is split."""
    from worker.settings import Settings
    from worker.sink.results import open_results
    from worker.sink.stored import EventQuery

    started = time.monotonic()
    with Cluster(base, settings={"CHAOS_SLOW_MS": "60"}).start(0) as cluster:
        first, second = _host(cluster, "host-a"), _host(cluster, "host-b")
        a_db, b_db = base / "host-a" / "results.db", base / "host-b" / "results.db"
        _worker(cluster, first, 0, [EXE, "worker", "--no-beat"])
        client = cluster.client()
        deadline = time.monotonic() + 60
        while client.get(keys.RESULTS_STORE) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        refused = subprocess.Popen([EXE, "worker", "--no-beat"], env=second, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, cwd=ROOT)
        try:
            said = refused.communicate(timeout=30)[1].decode(errors="replace")
        except subprocess.TimeoutExpired:  # it started: a worker (and a sink) on the second host's store
            refused.kill()
            said = refused.communicate()[1].decode(errors="replace")
        cli_refused = refused.returncode == 1 and str(a_db) in said and str(b_db) in said and "--no-sink" in said
        _worker(cluster, {**second, "BACKFILL_WORKER_SINK": "1"}, 1,
                [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", "imports,reports",
                 "--pool", "prefork", "-c", "1"])
        cluster.wait_ready(2)
        path = events_file(base, rows, seed=31)
        expected = oracle(path, cluster.chunk_rows)
        import_id = cluster.enqueue(path)
        report = cluster.wait_report(import_id, timeout=240)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            entries, stored = client.hmget(keys.import_hash(import_id), "outbox_entries", "outbox_stored")
            if entries and entries == stored:
                break
            time.sleep(0.2)
        from producers.api import report_of

        claim = report_of({k.decode(): v.decode() for k, v in client.hgetall(keys.import_hash(import_id)).items()})
        in_a = open_results(Settings(database_url=f"sqlite:///{a_db}"))
        try:
            ids = collections.Counter(e.event_id for e in in_a.events(EventQuery(import_id=import_id, limit=10**9)))
        finally:
            in_a.close()
        in_b = open_results(Settings(database_url=f"sqlite:///{b_db}"))
        try:
            in_second = in_b.count_events(import_id)
        finally:
            in_b.close()
        logs = (base / "worker1.log").read_text(errors="replace")
        sink_refused = '"sink not started"' in logs and str(a_db) in logs and str(b_db) in logs
        split = [_chunks_done(cluster, 0), _chunks_done(cluster, 1)]
        result = cluster.check(import_id, report, expected, stored=ids)
        result["stored_claim_true"] = bool(claim and claim.get("stored")) and sum(ids.values()) == expected.imported
        row = _row("split-store: two homes, no DATABASE_URL", f"chunks committed {split[0]} + {split[1]}", started,
                   result, complete=min(split) > 0)
        faults = [why for why, bad in (
            ("the second host's `backfill worker` started", not cli_refused),
            ("the second worker's sink did not refuse with both stores named", not sink_refused),
            (f"{in_second} events stored in the second host's file", in_second),
            ("the report's stored claim is false", not result["stored_claim_true"]),
            ("the second worker committed no chunk: the hosts did not share the import", min(split) == 0),
        ) if bad]
        row["ok"] = row["ok"] and not faults
        row["report"] = "; ".join(faults) if faults else \
            f"second sink refused; first store: {row['report']}; stored claim true"
        return row


ALL = [split_store]
