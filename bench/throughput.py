"""End-to-end import throughput on this machine: `backfill import` to the finished report.

Starts its own redis-server (the embedded binary, on a free port) and N real
Celery worker processes, imports a generated file, and prints rows/s. Figures
go to a table on the terminal and to a JSON file so runs can be compared.

    python bench/throughput.py --rows 100000 --workers 2
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chunk-rows", type=int, default=2000)
    parser.add_argument("--type", dest="kind", choices=["events", "people", "segment"], default="events",
                        help="people: a people file, applied in file order (one worker at a time per import); "
                             "segment: a gzipped archive of mixed Segment messages (tests/segment_data.py)")
    parser.add_argument("--appendfsync", choices=["off", "everysec", "always"], default="off",
                        help="run Redis with an append-only file flushed this way (default: no AOF)")
    parser.add_argument("--out", help="JSON results (default: bench/results/throughput[-people].json)")
    args = parser.parse_args()

    from generate import generate, generate_people

    work = Path(tempfile.mkdtemp(prefix="backfill-bench-"))
    if args.kind == "segment":
        from tests.segment_data import messages, write_archive

        data = write_archive(work / f"segment-{args.rows}.ndjson.gz", messages(args.rows, people=5000)[0])
    else:
        data = work / f"{args.kind}-{args.rows}.csv"
        with data.open("w", newline="") as out:
            (generate_people if args.kind == "people" else generate)(out, args.rows)

    from worker.store.embedded import start_private

    aof = args.appendfsync != "off"
    redis_process, url = start_private(work / "redis", aof=aof, appendfsync=args.appendfsync if aof else "everysec")
    os.environ.update(REDIS_URL=url, BACKFILL_CHUNK_ROWS=str(args.chunk_rows), BACKFILL_LOG_LEVEL="WARNING",
                      BACKFILL_LOG_FORMAT="json", BACKFILL_HOME=str(work),
                      BACKFILL_OUTBOX_LIMIT="0")  # (no sink runs here: the outbox is left to grow)
    from producers.api import default_context, enqueue_import
    from producers.demo import start_workers, stop_workers, wait_ready
    from worker.app import app

    results = []
    try:
        for count in args.workers:
            default_context().store.r.flushdb()  # fresh dedupe memory for each run: same work every time
            processes = start_workers(url, count, beat=False, log_dir=work)
            try:
                wait_ready(app, count)
                started = time.perf_counter()
                options = {"kind": "people"} if args.kind == "people" else {"create_people": True}
                handle = enqueue_import(data, **options)
                queued = time.perf_counter() - started
                report = handle.wait(timeout=3600, poll_s=0.05)
                elapsed = time.perf_counter() - started
            finally:
                stop_workers(processes)
            results.append({
                "workers": count, "rows": report["rows"], "imported": report["imported"],
                "duplicates": report["duplicates"], "errors": report["errors"],
                "seconds": round(elapsed, 2), "rows_per_second": round(report["rows"] / elapsed),
                "producer_seconds": round(queued, 2),
            })
    finally:
        redis_process.kill()

    print(f"\nbackfill end-to-end {args.kind} import, {args.rows:,} rows, {args.chunk_rows}-row chunks, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, AOF {args.appendfsync}")
    print(f"{'workers':>8} {'seconds':>9} {'rows/s':>10} {'producer s':>11} {'imported':>10} {'duplicates':>11} {'errors':>8}")
    for r in results:
        print(f"{r['workers']:>8} {r['seconds']:>9} {r['rows_per_second']:>10,} {r['producer_seconds']:>11} {r['imported']:>10,} "
              f"{r['duplicates']:>11,} {r['errors']:>8,}")
    out = Path(args.out or HERE / "results" / f"throughput{'' if args.kind == 'events' else '-' + args.kind}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({"kind": args.kind, "rows": args.rows, "chunk_rows": args.chunk_rows, "cores": os.cpu_count(),
                                  "appendfsync": args.appendfsync,
                                  "runs": results}, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
