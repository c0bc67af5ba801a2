"""The chaos harness: a private cluster (redis-server with AOF, real workers, beat), an
oracle, and the scenarios of the reliability bar.

Each scenario starts its own cluster, imports a seeded events file while it
breaks something (kills pool children, worker processes or Redis, publishes
every task twice, makes a chunk raise or kill its worker), waits for the report
and compares the import with the oracle: the same file processed in this process
by the pure core, one chunk after the other. Run all of it with ``make chaos``
(``python -m tests.chaos.run``); ``tests/chaos/test_chaos.py`` runs smaller
versions of the same scenarios in ``make test``.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from generate import generate

from worker import keys
from worker.events.rows import dedupe_key
from worker.store.embedded import free_port, start_private


# -- the oracle --------------------------------------------------------------------------------
@dataclasses.dataclass
class Expected:
    """What an import of a file must give, whatever happened to the cluster."""

    rows: int
    imported: int
    duplicates: int
    error_rows: set[int]
    #: the event ids that must be in the events stream, each exactly once
    event_ids: set[str]
    #: row numbers of each chunk, by chunk number
    chunk_rows: dict[int, list[int]]


def oracle(path: Path, chunk_rows: int, failed_chunks: frozenset[int] = frozenset()) -> Expected:
    """Process ``path`` in this process, one chunk after the other; ``failed_chunks`` count as errors."""
    from producers.api import inspect
    from producers.split import chunks
    from worker.events import chunk as core
    from worker.settings import Settings
    from worker.spec import ImportSpec

    source, plan = inspect(path, settings=Settings())
    spec = ImportSpec(import_id="oracle", columns=plan.columns, identifier=plan.identifier, create_people=True)
    seen: set[bytes] = set()
    expected = Expected(0, 0, 0, set(), set(), {})
    now = time.time()
    with source:
        for chunk in chunks(source, plan, chunk_rows):
            expected.rows += len(chunk.rows)
            expected.chunk_rows[chunk.number] = list(chunk.row_numbers)
            if chunk.number in failed_chunks:
                expected.error_rows.update(chunk.row_numbers)
                continue
            validated = core.validate(spec, chunk.rows, chunk.row_numbers, now, 300)
            expected.error_rows.update(row for row, _, _ in validated.errors)
            for event in validated.events:
                key = dedupe_key(event)
                if key is not None and key in seen:
                    expected.duplicates += 1
                    continue
                if key is not None:
                    seen.add(key)
                expected.imported += 1
                expected.event_ids.add(event.event_id)
    return expected


# -- the cluster ---------------------------------------------------------------------------------
class Cluster:
    """redis-server (AOF, everysec), worker processes and beat, all private to one scenario."""

    def __init__(self, base: Path, *, pool: str = "prefork", concurrency: int = 2,
                 settings: dict[str, str] | None = None) -> None:
        self.base = base
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.pool, self.concurrency = pool, concurrency
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}, "REDIS_URL": self.url, "BACKFILL_HOME": str(base / "home"), "BACKFILL_LOG_FORMAT": "json",
            "BACKFILL_CHUNK_ROWS": "200", "BACKFILL_CHUNK_SOFT_TIME_LIMIT_S": "3", "BACKFILL_CHUNK_TIME_LIMIT_S": "4",
            "BACKFILL_PEOPLE_APPLY_BUDGET_S": "1",
            "BACKFILL_VISIBILITY_TIMEOUT_S": "10", "BACKFILL_REQUEUE_AFTER_S": "5", "BACKFILL_SWEEP_EVERY_S": "1",
            "BACKFILL_MAX_CHUNK_TRIES": "10", "PYTHONPATH": str(ROOT), "CHAOS_BUSY_DIR": str(base / "busy"),
            **(settings or {}),
        }
        self.redis: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.beat: subprocess.Popen | None = None
        self._started = 0
        #: workers that exited on their own and were started again, as a supervisor would
        self.restarts = 0
        self._stopped: set[int] = set()

    @property
    def chunk_rows(self) -> int:
        return int(self.env["BACKFILL_CHUNK_ROWS"])

    # redis ----------------------------------------------------------------------------------------
    def start_redis(self) -> None:
        self.redis, _ = start_private(self.base / "redis", port=self.port, aof=True)

    def bounce_redis(self, rng, *, wait: bool = True) -> None:
        """kill -9 the server (after 1-2 s unless ``wait`` is False: the caller paced it), start it again on
        its AOF 0.2-1 s later, and restart the workers that exited meanwhile (as a supervisor would)."""
        if wait:
            time.sleep(rng.uniform(1.0, 2.0))
        self.kill_redis()
        time.sleep(rng.uniform(0.2, 1.0))
        self.start_redis()
        self.supervise()

    def kill_redis(self) -> None:
        """kill -9 the server: what it had not yet written to its AOF (up to about a second) is lost."""
        assert self.redis is not None
        self.redis.kill()
        self.redis.wait()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    # workers ----------------------------------------------------------------------------------------
    def start_worker(self, settings: dict[str, str] | None = None) -> subprocess.Popen:
        """Start one more worker; ``settings``: its own environment on top of the cluster's."""
        index = self._started
        self._started += 1
        args = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", "imports,reports",
                "-I", "tests.chaos.faults", "--pool", self.pool, "-n", f"chaos{index}@%h",
                "--without-mingle", "--without-gossip"]
        if self.pool == "prefork":
            args += ["-c", str(self.concurrency)]
        log = open(self.base / f"worker{index}.log", "wb")
        process = subprocess.Popen(args, env={**self.env, **(settings or {})}, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=ROOT)
        self.workers.append(process)
        return process

    def start(self, workers: int = 2) -> Cluster:
        (self.base / "busy").mkdir(parents=True, exist_ok=True)
        self.start_redis()
        for _ in range(workers):
            self.start_worker()
        self.beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.app", "beat", "-s", str(self.base / "beat-schedule")],
            env=self.env, stdout=open(self.base / "beat.log", "wb"), stderr=subprocess.STDOUT, cwd=ROOT)
        self.wait_ready(workers)
        return self

    def wait_ready(self, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` workers (in all, since the cluster started) said they are ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_count(" ready.") >= count:
                return
            time.sleep(0.1)
        raise RuntimeError(f"workers not ready in {timeout} s:\n{self.logs()[-3000:]}")

    def supervise(self) -> None:
        """Start a new worker for each one that exited on its own, as systemd (Restart=always) or
        Kubernetes would: a worker can die when its broker restarts under it (see the README)."""
        for worker in list(self.workers):
            if worker.poll() is not None and worker.pid not in self._stopped:
                self._stopped.add(worker.pid)
                self.restarts += 1
                self.start_worker()

    def stopped(self, worker: subprocess.Popen) -> None:
        """Note a worker the scenario stopped or killed itself (not to be restarted by :meth:`supervise`)."""
        self._stopped.add(worker.pid)

    def alive_workers(self) -> list[subprocess.Popen]:
        return [w for w in self.workers if w.poll() is None]

    @staticmethod
    def pool_children(worker: subprocess.Popen) -> list[int]:
        """The prefork pool's child processes of a worker (the pool respawns them from other threads,
        so every thread's children count)."""
        pids = []
        for task in Path(f"/proc/{worker.pid}/task").glob("*"):
            try:
                pids += [int(pid) for pid in (task / "children").read_text().split()]
            except OSError:
                continue
        return pids

    def busy(self, pids: list[int]) -> list[int]:
        """Those of ``pids`` in the middle of a chunk right now."""
        marked = {int(p.name) for p in (self.base / "busy").iterdir()}
        return [pid for pid in pids if pid in marked]

    def jobs_lost(self) -> int:
        """Tasks whose pool child was killed while running them (billiard's WorkerLostError, one per job)."""
        lost = set()
        for path in self.base.glob("worker*.log"):
            lost.update((path.name, job) for job in re.findall(r"signal 9 \(SIGKILL\) Job: (\d+)", path.read_text()))
        return len(lost)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.base.glob("worker*.log")))

    def log_count(self, text: str) -> int:
        return self.logs().count(text)

    def stop(self) -> None:
        for process in [*self.workers, self.beat]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, self.beat]:
            if process is None:
                continue
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # imports ------------------------------------------------------------------------------------------
    def enqueue(self, path: Path, *, twice: bool = False, drop_every: int = 0, trigger: bool = False) -> str:
        """Queue ``path`` from a producer process of its own (``trigger``: a triggering import); the import id."""
        args = [sys.executable, "-m", "tests.chaos.produce", str(path), *(["--twice"] if twice else []),
                *(["--trigger"] if trigger else []), "--drop-every", str(drop_every)]
        done = subprocess.run(args, env=self.env, capture_output=True, cwd=ROOT, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode()[-3000:])
        return done.stdout.decode().split()[-1]

    def report(self, import_id: str) -> dict | None:
        """The report, None while the import runs or while Redis is down."""
        try:
            raw = self.client().hget(keys.import_hash(import_id), "report")
        except redis.RedisError:
            return None
        return orjson.loads(raw) if raw else None

    def chunks_done(self, import_id: str) -> int | None:
        """Chunks of the import committed so far; None while Redis is down."""
        try:
            return int(self.client().hget(keys.import_hash(import_id), "chunks_done") or 0)
        except redis.RedisError:
            return None

    def wait_progress(self, import_id: str, chunks: int, timeout: float = 240) -> bool:
        """Wait until ``chunks`` chunks of the import are committed (True), or its report is written first
        (False): faults are paced by the import's progress, not by the clock, so a fast machine cannot
        finish the import before they are made, nor a slow one make them all before it starts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.chunks_done(import_id)
            if done is not None and done >= chunks:
                return True
            if self.report(import_id) is not None:
                return False
            self.supervise()
            time.sleep(0.05)
        return False

    def wait_report(self, import_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            report = self.report(import_id)
            if report is not None:
                return report
            self.supervise()
            time.sleep(0.2)
        state = self.client().hgetall(keys.import_hash(import_id))
        raise AssertionError(f"import {import_id} did not finish in {timeout} s: {state}\n{self.logs()[-4000:]}")

    def check(self, import_id: str, report: dict, expected: Expected,
              stored: collections.Counter | None = None) -> dict:
        """Compare an import with the oracle: what was lost, what was doubled. ``stored``: the event ids
        to compare (by default those in the outbox; a scenario with sinks gives the database's)."""
        from worker.store import Store

        st = Store(self.client())
        # The notification (the "import finished" line) is its own task, pending work until done.
        deadline = time.monotonic() + 60
        while st.r.zscore(keys.PENDING, keys.pending_member(import_id, keys.NOTIFY)) is not None:
            assert time.monotonic() < deadline, f"import {import_id}: its notification never happened"
            time.sleep(0.1)
        ids = stored if stored is not None else collections.Counter(event["id"] for event in st.events.read(import_id))
        error_rows = collections.Counter(problem["row"] for problem in st.imports.problems(import_id, "errors"))
        lost = len(expected.event_ids - ids.keys()) + len(expected.error_rows - error_rows.keys())
        doubled = sum(n - 1 for n in ids.values() if n > 1) + sum(n - 1 for n in error_rows.values() if n > 1)
        extra = len(ids.keys() - expected.event_ids) + len(error_rows.keys() - expected.error_rows)
        state = st.imports.state(import_id)
        return {
            "rows": expected.rows, "lost": lost, "doubled": doubled, "unexpected": extra,
            "report_matches": (report["rows"], report["imported"], report["duplicates"], report["errors"])
            == (expected.rows, expected.imported, expected.duplicates, len(expected.error_rows)),
            "report_runs": int(state.get("finalize_runs", 0)),
            "finished_lines": self.log_count('"import finished"'),
            "status": report["status"], "restarts": self.restarts,
        }


def pace(total_chunks: int, faults: int, fault: int) -> int:
    """The chunks that must be committed before fault number ``fault`` (0-based) of ``faults``: spread over
    the import, the last one with a share of its chunks still to come."""
    return max(1, (fault + 1) * total_chunks // (faults + 2))


def events_file(base: Path, rows: int, seed: int) -> Path:
    """A seeded events file of the benchmark's kind: ~10 % duplicates, ~1 % bad rows, every event an id."""
    path = base / f"events-{rows}-{seed}.csv"
    with path.open("w", newline="") as out:
        generate(out, rows, seed=seed)
    return path

