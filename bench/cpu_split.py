"""Where an import's CPU goes, process by process: the producer, the workers' pool children (the
tasks), the workers' main processes (Celery's consumers), and Redis; then what Redis spent in each
command.

    python bench/cpu_split.py [--rows 1000000] [--workers 2] [--type people] [--file FILE]

Starts a private redis-server and real workers, imports a generated file (or ``--file``) as
``backfill import`` does, and reads every process's CPU seconds (utime + stime, /proc) at the
end. CPU seconds move less with the host's speed than wall seconds do, and they say which process
a saving must come from: on two cores, 1M rows in 7 s means ~14 us of CPU a row for all of them.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--type", dest="kind", choices=["events", "people"], default="events")
    parser.add_argument("--file", help="import this file instead of a generated one")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    parser.add_argument("--campaigns", type=int, choices=[0, 1, 2, 3], default=0,
                        help="a triggering import (no window) with the first N of generate.py's campaigns (0: passive)")
    args = parser.parse_args()

    from generate import campaigns, generate, generate_people

    work = Path(tempfile.mkdtemp(prefix="backfill-cpu-"))
    data = Path(args.file) if args.file else work / f"{args.kind}.csv"
    if not args.file:
        with data.open("w", newline="") as out:
            (generate_people if args.kind == "people" else generate)(out, args.rows)

    from worker.store.embedded import start_private

    redis_process, url = start_private(work / "redis")
    os.environ.update(REDIS_URL=url, BACKFILL_LOG_LEVEL="WARNING", BACKFILL_LOG_FORMAT="json",
                      BACKFILL_HOME=str(work), BACKFILL_OUTBOX_LIMIT="0")
    from producers.api import default_context, enqueue_import
    from producers.demo import start_workers, stop_workers, wait_ready
    from worker.app import app

    processes = start_workers(url, args.workers, beat=False, log_dir=work)
    try:
        wait_ready(app, args.workers)
        mains = [p.pid for p in processes]
        # Each worker main process forks its pool children: their CPU is read while they live
        # (a child replaced mid-run would otherwise be lost), the last reading kept, less what
        # the children present before the import had spent starting.
        seen: dict[int, float] = {}
        done = threading.Event()

        def read_children() -> None:
            for main_pid in mains:
                for child in _children(main_pid):
                    spent = _cpu(child)
                    if spent is not None:
                        seen[child] = spent

        def watch() -> None:
            while not done.is_set():
                read_children()
                time.sleep(1.0)

        read_children()
        children_before = sum(seen.values())

        watcher = threading.Thread(target=watch, daemon=True)
        start = {"producer": time.process_time(), "mains": sum(_cpu(p) or 0 for p in mains),
                 "redis": _cpu(redis_process.pid) or 0}
        default_context().store.r.config_resetstat()
        watcher.start()
        started = time.perf_counter()
        options: dict = {"kind": "people"} if args.kind == "people" else {"create_people": True}
        if args.campaigns:
            for campaign in campaigns(args.campaigns):
                default_context().store.triggers.add_campaign(campaign)
            options.update(trigger=True, trigger_window=None)
        handle = enqueue_import(data, **options)
        queued = time.process_time()
        # (enqueue_import returns once the file is scanned: its chunks are queued by a thread from then on)
        scanned_s = time.perf_counter() - started
        report = handle.wait(timeout=3600, poll_s=0.05)
        elapsed = time.perf_counter() - started
        done.set()
        watcher.join()
        spent = {
            "producer, scanning": queued - start["producer"],
            # its thread queueing the chunks, the report's polls (every 50 ms) and this watcher
            "producer, queueing+waiting": time.process_time() - queued,
            "workers' pool children": sum(seen.values()) - children_before,
            "workers' main processes": sum(_cpu(p) or 0 for p in mains) - start["mains"],
            "redis-server": (_cpu(redis_process.pid) or 0) - start["redis"],
        }
        stats = default_context().store.r.info("commandstats")
    finally:
        stop_workers(processes)
        redis_process.kill()

    rows = report["rows"]
    print(f"\n{args.kind} import{f' --trigger, {args.campaigns} campaigns' if args.campaigns else ''}, {rows:,} rows, {args.workers} workers: {elapsed:.2f} s, {rows / elapsed:,.0f} rows/s "
          f"(the file scanned in the first {scanned_s:.2f} s, before any chunk is queued)")
    print(f"{'process':<28}{'CPU s':>8}{'us a row':>10}")
    for name, seconds in spent.items():
        print(f"{name:<28}{seconds:>8.2f}{seconds * 1e6 / rows:>10.2f}")
    total = sum(spent.values())
    print(f"{'all':<28}{total:>8.2f}{total * 1e6 / rows:>10.2f}   "
          f"({100 * total / (elapsed * (os.cpu_count() or 1)):.0f} % of the machine's cores busy)")
    by_command = {name.split("_", 1)[1]: round(stats[name]["usec"] / rows, 2)
                  for name in sorted(stats, key=lambda n: -stats[n]["usec"]) if stats[name]["usec"] / rows >= 0.05}
    print("Redis, microseconds a row by command: " + ", ".join(f"{name} {us:.2f}" for name, us in by_command.items()))
    if args.out:
        import orjson

        Path(args.out).write_bytes(orjson.dumps({
            "kind": args.kind, "rows": rows, "workers": args.workers, "seconds": round(elapsed, 2),
            "rows_per_second": round(rows / elapsed),
            "us_a_row": {name: round(seconds * 1e6 / rows, 2) for name, seconds in spent.items()},
            "redis_us_a_row_by_command": by_command}, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
