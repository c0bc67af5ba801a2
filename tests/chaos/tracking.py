"""The tracking endpoint's row of the reliability bar: Segment's own client library sends from a
process of its own while pool children and the `backfill serve` process are killed (SIGKILL; the
server is started again on its port, as a supervisor would). Every message the library sent must
be committed exactly once: none lost, none doubled (a batch the server took before dying is sent
again by the library: its events are duplicates by messageId).
"""
from __future__ import annotations

import collections
import contextlib
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


def tracking_backlog_order(base: Path, people: int = 40, pauses: int = 6) -> dict:
    """A person's changes in the order received, with the workers behind. Each round pauses every pool
    child (SIGSTOP), sends identify calls setting each person's plan to A (answered: stored), waits until
    that stream has ended, sends plan B from another thread and waits until the stream opened for B has
    ended too, then lets the children go: every person must end on B. ``lost``: people left on an
    earlier plan, over all rounds. Every round makes its pause: the rounds are driven, not timed."""
    import threading

    import httpx

    from .scenarios import _row

    started = time.monotonic()
    live_s = 1
    settings = {"CHAOS_SLOW_MS": "300", "BACKFILL_TRACK_IMPORT_S": str(live_s), "BACKFILL_PRODUCER_TIMEOUT_S": "30",
                "BACKFILL_TRACK_TRIGGER": "0"}
    with Cluster(base, settings=settings).start(2) as cluster:
        from worker.store import Store

        st = Store(cluster.client())
        record, key = st.apikeys.create("chaos-order", "track")
        server = Server(cluster)
        server.start()
        resent, wrong, made, versions = [0], 0, 0, 0
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", auth=(key, ""), timeout=120) as client:
            for _ in range(300):
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)

            def identify(version: int, before: int = 0) -> None:
                # ``before`` track calls of other users ahead of the identify calls: A's stream then has
                # more chunks (each slowed) than B's, so B would commit first if it were let in early
                batch = [{"type": "track", "userId": f"f{n}", "event": "Filler", "messageId": f"f{version}-{n}"}
                         for n in range(before)]
                batch += [{"type": "identify", "userId": f"o{p}", "traits": {"plan": f"v{version}"},
                           "messageId": f"o{p}-v{version}"} for p in range(people)]
                while client.post("/v1/batch", json={"batch": batch}).status_code != 200:
                    resent[0] += 1  # a 503: the library's rule is to send it again
                    time.sleep(0.5)

            for _ in range(pauses):
                children = [p for w in cluster.alive_workers() for p in cluster.pool_children(w)]
                for pid in children:
                    os.kill(pid, signal.SIGSTOP)  # (a child the pool replaced meanwhile is not paused)
                try:
                    identify(versions, before=1000)
                    time.sleep(live_s + 0.6)  # A's stream ends, uncommitted
                    later = threading.Thread(target=identify, args=(versions + 1,))
                    later.start()
                    time.sleep(live_s + 1.2)  # the stream opened for B ends while B waits
                finally:
                    for pid in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGCONT)
                made += 1
                later.join(120)
                versions += 2
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    plans = [(st.people.find(f"o{p}", "id") or {}).get("a:plan") for p in range(people)]
                    if all(plan == f"v{versions - 1}" for plan in plans):
                        break
                    time.sleep(0.2)
                wrong += sum(plan != f"v{versions - 1}" for plan in plans)
        server.stop()
        reports = stream_reports(st, record.id, timeout=180)
        runs = [int(st.imports.state(r["import_id"]).get("finalize_runs", 0)) for r in reports]
        result = {
            "rows": (people + 500) * versions, "lost": wrong, "doubled": 0, "unexpected": 0,
            "report_matches": sum(r["errors"] for r in reports) == 0
            and sum(r["imported"] + r["duplicates"] for r in reports) >= (people + 500) * versions,
            "report_runs": next((n for n in runs if n != 1), 1),
            "finished_lines": cluster.log_count('"import finished"'),
            "status": "/".join(sorted({r["status"] for r in reports})),
        }
        return _row("tracking order: workers paused across stream ends", f"{made} pauses of every pool child; "
                    f"{len(reports)} streams, {resent[0]} batches sent again", started, result,
                    complete=made == pauses)


ALL = [tracking_kills, tracking_backlog_order]
