"""The reliability bar's row for wrong clocks: two workers, one 31 days fast and one 10 minutes slow.

An earlier import (by workers with a right clock) leaves its events' dedupe marks; then the shifted
workers import, with triggering on, a file that repeats each of those events beside new ones of 2
minutes ago. Had the workers decided by their own clocks, the fast one would take the earlier
marks for expired (30-day window) and import the repeats as new, and call the new events outside
the 72-hour trigger window; the slow one would call events of 2 minutes ago "future" (8 minutes
ahead of it, over the 5-minute allowance) and never send them. Deciding by Redis's clock: every
repeat is a duplicate, every new event imported once and sent now, no "future"; and each shifted
worker says its clock is off, in one warning and in the gauge the BackfillWorkerClockSkewed alert reads.
"""
from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from .harness import Cluster, Expected
from .scenarios import _row

DAY = 86_400
#: the shifted workers' clocks, seconds off Redis's
SKEWS = {"31 days fast": 31 * DAY, "10 minutes slow": -600}
EVENT = "Completes checkout"
WARNING = "this host's clock is off Redis's"


def _files(base: Path, rows: int, at: float) -> tuple[Path, Path, Expected]:
    """The earlier file (``rows`` events), the file that repeats each of them beside as many new ones
    (interleaved, so every chunk holds both), all at ``at``; and what the second import must give."""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = "p{n}@example.com,{event},{stamp},{id}\n"
    earlier, again = base / "earlier.csv", base / "again.csv"
    header = "email,event_name,time,event_id\n"
    earlier.write_text(header + "".join(line.format(n=n % 300, event=EVENT, stamp=stamp, id=f"old{n}")
                                        for n in range(rows)))
    again.write_text(header + "".join(line.format(n=n % 300, event=EVENT, stamp=stamp, id=f"{kind}{n}")
                                      for n in range(rows) for kind in ("old", "new")))
    return earlier, again, Expected(2 * rows, rows, rows, set(), {f"new{n}" for n in range(rows)}, {})


def _chunks_done(cluster: Cluster, index: int, import_id: str) -> int:
    """Chunks of ``import_id`` that worker ``index`` committed (its "chunk done" lines)."""
    done = 0
    for text in (cluster.base / f"worker{index}.log").read_text(errors="replace").splitlines():
        if '"chunk done"' in text and import_id in text:
            done += bool(json.loads(text).get("committed"))
    return done


def clock_skew(base: Path, rows: int = 3000) -> dict:
    """The row: see the module's docstring."""
    from worker.events.rules import Campaign
    from worker.ops.metrics import RedisCollector
    from worker.store import Store

    started = time.monotonic()
    with Cluster(base, concurrency=1, settings={"CHAOS_SLOW_MS": "100"}).start(2) as cluster:
        st = Store(cluster.client())
        st.triggers.add_campaign(Campaign("thanks", EVENT, 0))
        earlier, again, expected = _files(cluster.base, rows, st.r.time()[0] - 120)  # 2 minutes ago, by Redis
        cluster.wait_report(cluster.enqueue(earlier))
        for worker in cluster.alive_workers():  # the right clocks are done: the wrong ones take over
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
            cluster.stopped(worker)
        shifted = {name: cluster.start_worker({"CHAOS_CLOCK_OFFSET_S": str(skew)}) for name, skew in SKEWS.items()}
        cluster.wait_ready(2 + len(shifted))
        import_id = cluster.enqueue(again, trigger=True)
        report = cluster.wait_report(import_id)
        result = cluster.check(import_id, report, expected)
        gauge = {s.labels["worker"]: s.value for family in RedisCollector(st.r).collect() for s in family.samples
                 if s.name == "backfill_worker_clock_skew_seconds"}
        done, said, shown = {}, {}, {}
        for name, process in shifted.items():
            index = cluster.workers.index(process)  # (its log is worker<index>.log, its name chaos<index>@...)
            done[name] = _chunks_done(cluster, index, import_id)
            said[name] = (cluster.base / f"worker{index}.log").read_text(errors="replace").count(WARNING)
            shown[name] = any(w.startswith(f"chaos{index}@") and abs(v - SKEWS[name]) < 60 for w, v in gauge.items())
        triggers = report["triggers"]
        decided = (triggers["sent_now"], triggers["future"], triggers["outside_window"], report["warnings"]) == (
            rows, 0, 0, 0) and len(st.triggers.deliveries()) == rows
        # one warning a worker (its one pool process), not one a chunk; the gauge shows each skew
        told = all(said[n] == 1 and shown[n] for n in SKEWS)
        row = _row("clock skew", ", ".join(f"{n}: {done[n]} chunks" for n in SKEWS), started, result,
                   complete=all(done.values()))
        row["ok"] = row["ok"] and decided and told
        row["report"] += (f"; triggers sent now {triggers['sent_now']}/{rows}, future {triggers['future']}, "
                          f"outside the window {triggers['outside_window']}; "
                          + ", ".join(f"{n}: {said[n]} warning(s), gauge {'shown' if shown[n] else 'MISSING'}"
                                      for n in SKEWS))
        if not all(done.values()):
            row["report"] += "; FAULT NOT MADE: a shifted worker committed no chunk of the import"
        return row


ALL = [clock_skew]
