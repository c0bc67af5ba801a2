"""The tracking endpoint's row of the reliability bar: Segment's own client library sends from a
process of its own while pool children and the `backfill serve` process are killed (SIGKILL; the
server is started again on its port, as a supervisor would). Every message the library sent must
be committed exactly once: none lost, none doubled (a batch the server took before dying is sent
again by the library: its events are duplicates by messageId).
"""
from __future__ import annotations

import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.integration.helpers import stream_reports

from .harness import ROOT, Cluster

#: segment-analytics-python sending ``count`` track calls with messageIds t0..t{count-1}; it retries
#: a batch that got no answer (connection refused or reset, 5xx) with backoff.
SENDER = """
import os, sys, time, orjson
from segment.analytics.client import Client
key, url, count, kills_done = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
failed = []
client = Client(write_key=key, host=url, gzip=True, upload_size=50, max_queue_size=1_000_000, max_retries=30,
                timeout=5, on_error=lambda error, batch: failed.append(len(batch)))
for n in range(count):
    client.track(f"u{n % 400}", "Chaos Event", {"n": n}, message_id=f"t{n}")
    if n % 200 == 199:
        client.flush()  # a steady stream rather than one burst
        if not os.path.exists(kills_done):
            time.sleep(0.4)  # paced while the kills go on: a fast host must not finish before them
deadline = time.monotonic() + 120
while not os.path.exists(kills_done) and time.monotonic() < deadline:
    time.sleep(0.1)  # the last batch waits for the kills, so the scenario always makes them all
client.flush()
print(orjson.dumps({"failed_batches": len(failed)}).decode())
"""

class Server:
    """`backfill serve` on a fixed port for the cluster, killed and started again by the scenario."""

    def __init__(self, cluster: Cluster) -> None:
        from worker.store.embedded import free_port

        self.cluster, self.port, self.starts = cluster, free_port(), 0
        self.exe = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.starts += 1
        env = {**self.cluster.env, "BACKFILL_API_PORT": str(self.port)}
        log = (self.cluster.base / f"serve{self.starts}.log").open("wb")
        self.process = subprocess.Popen([self.exe, "serve"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def tracking_kills(base: Path, messages: int = 20_000, kills: int = 6) -> dict:
    """Kill a busy pool child and the server in turn, ``kills`` times, while a client sends."""
    from .scenarios import _row

    started = time.monotonic()
    rng = random.Random(17)
    settings = {"CHAOS_SLOW_MS": "50", "BACKFILL_TRACK_IMPORT_S": "3", "BACKFILL_PRODUCER_TIMEOUT_S": "30",
                "BACKFILL_TRACK_TRIGGER": "0"}
    with Cluster(base, settings=settings).start(2) as cluster:
        from worker.store import Store

        st = Store(cluster.client())
        record, key = st.apikeys.create("chaos", "track")
        server = Server(cluster)
        server.start()
        kills_done = cluster.base / "kills-done"
        sender = subprocess.Popen([sys.executable, "-c", SENDER, key, f"http://127.0.0.1:{server.port}", str(messages),
                                   str(kills_done)],
                                  cwd=ROOT, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        done = {"server": 0, "pool child": 0}
        try:
            time.sleep(2)
            while sender.poll() is None and sum(done.values()) < kills:
                time.sleep(rng.uniform(0.3, 1.0))
                if sum(done.values()) % 2 == 0:
                    server.kill()
                    time.sleep(rng.uniform(0.2, 1.0))
                    server.start()
                    done["server"] += 1
                else:
                    children = cluster.busy([p for w in cluster.alive_workers() for p in cluster.pool_children(w)])
                    if children:
                        os.kill(rng.choice(children), signal.SIGKILL)
                        done["pool child"] += 1
            kills_done.touch()
            out, err = sender.communicate(timeout=600)
        finally:
            if sender.poll() is None:
                sender.kill()
        if sender.returncode != 0:
            raise RuntimeError(err.decode()[-3000:])
        sent = orjson.loads(out.splitlines()[-1])
        server.stop()
        reports = stream_reports(st, record.id, timeout=180)
        ids = collections.Counter(e["id"] for e in st.events.read())
        expected = {f"t{n}" for n in range(messages)}
        imported = sum(r["imported"] for r in reports)
        runs = [int(st.imports.state(r["import_id"]).get("finalize_runs", 0)) for r in reports]
        result = {
            "rows": messages, "lost": len(expected - ids.keys()), "doubled": sum(n - 1 for n in ids.values() if n > 1),
            "unexpected": len(ids.keys() - expected),
            "report_matches": imported == messages and sum(r["errors"] for r in reports) == 0
            and sent["failed_batches"] == 0,
            # every stream's report written once: 1, else the first count that is not
            "report_runs": next((n for n in runs if n != 1), 1),
            "finished_lines": cluster.log_count('"import finished"'), "status": "/".join(sorted({r["status"] for r in reports})),
        }
        broke = f"{done['server']} server kills, {done['pool child']} pool child kills; " \
                f"{sum(r['duplicates'] for r in reports)} resent"
        return _row("tracking endpoint: server and pool child SIGKILL", broke, started, result,
                    complete=sum(done.values()) == kills)


ALL = [tracking_kills]
