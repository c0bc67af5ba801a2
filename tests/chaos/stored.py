"""The reliability bar of the results database: sinks killed, PostgreSQL crashed, Redis killed under a sink.

Each scenario runs a cluster of its own (harness.Cluster) with ``backfill sink`` processes beside its
workers, and compares the database with the oracle: the set of events stored for the import equals
the oracle's exactly (nothing lost, nothing twice), the people table equals the directory in Redis,
and the report is written once.
"""
from __future__ import annotations

import collections
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from worker import keys

from .harness import ROOT, Cluster, Expected, events_file, oracle, pace
from .scenarios import _row


class Sinks:
    """``backfill sink`` processes of one cluster, writing to ``database_url``."""

    def __init__(self, cluster: Cluster, database_url: str) -> None:
        self.cluster, self.database_url = cluster, database_url
        self.env = {**cluster.env, "DATABASE_URL": database_url, "BACKFILL_SINK_CLAIM_IDLE_MS": "1000",
                    "BACKFILL_SINK_BATCH": "5"}
        self.processes: list[subprocess.Popen] = []
        self.exe = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"
        subprocess.run([self.exe, "db", "upgrade"], env=self.env, check=True, capture_output=True, cwd=ROOT)

    def start(self) -> subprocess.Popen:
        log = open(self.cluster.base / f"sink{len(self.processes)}.log", "wb")
        process = subprocess.Popen([self.exe, "sink"], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.processes.append(process)
        return process

    def kill(self) -> None:
        """SIGKILL the running sinks (whatever batch they hold stays pending, for another to claim)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()

    def wait_stored(self, import_id: str, timeout: float = 120) -> None:
        """Until everything the import wrote is acknowledged by a sink (its outbox counters meet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = self.cluster.client().hmget(keys.import_hash(import_id), "outbox_entries", "outbox_stored")
                if state[0] and state[0] == state[1]:
                    return
            except Exception:  # noqa: BLE001 - Redis restarting: ask again
                pass
            time.sleep(0.2)
        raise AssertionError(f"import {import_id} not stored in {timeout} s")

    def check(self, import_id: str, report: dict, expected: Expected) -> dict:
        """The cluster's own check, with the database's side: events stored vs the oracle, people vs the
        directory."""
        from worker.settings import Settings
        from worker.sink.batch import person_row
        from worker.sink.results import open_results
        from worker.sink.stored import EventQuery
        from worker.store.people import read_people

        self.wait_stored(import_id)
        results = open_results(Settings(database_url=self.database_url))
        try:
            stored = collections.Counter(e.event_id for e in results.events(EventQuery(import_id=import_id,
                                                                                        limit=10**9)))
            people = {}
            client = self.cluster.client()
            names = [k.decode() for k in client.scan_iter(match=keys.person("*"), count=1000)]
            for state in read_people(client, names):
                if state:
                    people[state["cio_id"]] = person_row(state, "")
            in_db = {p["cio_id"]: p for cio in people for p in results.people("cio_id", cio)}
            record = results.import_record(import_id)
        finally:
            results.close()
        # events: the database's, compared with the oracle (the outbox is trimmed as it is stored)
        result = self.cluster.check(import_id, report, expected, stored=stored)
        same = {cio: (p["cio_id"], p["id"], p["email"], p["created_at"], p["unsubscribed"], p["version"])
                for cio, p in in_db.items()}
        result["people_equal"] = bool(people) and same == {cio: (*row[:5], row[7]) for cio, row in people.items()}
        result["record"] = record is not None and record["status"] == report["status"]
        result["stored_ok"] = result["people_equal"] and result["record"]
        return result


def _begin(cluster: Cluster, database_url: str, rows: int, seed: int) -> tuple[Sinks, Expected, str]:
    sinks = Sinks(cluster, database_url)
    path = events_file(cluster.base, rows, seed=seed)
    return sinks, oracle(path, cluster.chunk_rows), cluster.enqueue(path)


def sink_kills(base: Path, kills: int = 10, rows: int = 60_000) -> dict:
    """SIGKILL the sink ``kills`` times while it drains an import into SQLite, starting a new one each time."""
    started = time.monotonic()
    rng = random.Random(21)
    with Cluster(base, settings={"CHAOS_SLOW_MS": "150"}).start(2) as cluster:
        sinks, expected, import_id = _begin(cluster, f"sqlite:///{base / 'results.db'}", rows, 21)
        sinks.start()
        done = 0
        try:
            while done < kills and cluster.wait_progress(import_id, pace(len(expected.chunk_rows), kills, done)):
                time.sleep(rng.uniform(0.05, 0.3))  # (mid-batch: the sink stores as the chunks commit)
                sinks.kill()
                done += 1
                sinks.start()
            report = cluster.wait_report(import_id, timeout=240)
            return _row("sink SIGKILL (SQLite)", f"{done} kills", started, sinks.check(import_id, report, expected),
                        complete=done == kills)
        finally:
            sinks.stop()


def postgres_crashes(base: Path, crashes: int = 3, rows: int = 60_000) -> dict:
    """Stop PostgreSQL with ``pg_ctl -m immediate`` ``crashes`` times during an import, starting it again:
    the sinks retry meanwhile and the outbox holds what is not stored."""
    from tests.integration.postgres import PrivatePostgres

    started = time.monotonic()
    rng = random.Random(22)
    server = PrivatePostgres()
    server.start()
    try:
        with Cluster(base, settings={"CHAOS_SLOW_MS": "100"}).start(2) as cluster:
            sinks, expected, import_id = _begin(cluster, server.url, rows, 22)
            sinks.start()
            sinks.start()
            done = 0
            try:
                while done < crashes and cluster.wait_progress(import_id,
                                                               pace(len(expected.chunk_rows), crashes, done)):
                    server.crash()
                    time.sleep(rng.uniform(0.5, 1.5))
                    server.start()
                    done += 1
                report = cluster.wait_report(import_id, timeout=240)
                return _row("PostgreSQL pg_ctl -m immediate", f"{done} crashes", started,
                            sinks.check(import_id, report, expected), complete=done == crashes)
            finally:
                sinks.stop()
    finally:
        server.destroy()


def redis_kills_under_sink(base: Path, kills: int = 3, rows: int = 40_000) -> dict:
    """kill -9 the redis-server while a sink drains (and workers commit), restarting it on its AOF."""
    started = time.monotonic()
    rng = random.Random(23)
    with Cluster(base, settings={"CHAOS_SLOW_MS": "100"}).start(2) as cluster:
        sinks, expected, import_id = _begin(cluster, f"sqlite:///{base / 'results.db'}", rows, 23)
        sinks.start()
        done = 0
        try:
            while done < kills and cluster.wait_progress(import_id, pace(len(expected.chunk_rows), kills, done)):
                cluster.bounce_redis(rng, wait=False)
                done += 1
                if all(p.poll() is not None for p in sinks.processes):
                    sinks.start()  # (a supervisor restarts a sink that gave up, as it does workers)
            report = cluster.wait_report(import_id, timeout=240)
            return _row("redis kill -9 under a sink", f"{done} kills", started, sinks.check(import_id, report, expected),
                        complete=done == kills)
        finally:
            sinks.stop()


ALL = [sink_kills, postgres_crashes, redis_kills_under_sink]
