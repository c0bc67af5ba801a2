"""One producer run in its own process, so that its peak memory is its own. Prints one JSON line.

    python bench/produce.py import FILE           # backfill's import, waiting for the report
    python bench/produce.py import FILE --stored  # ... and until a sink has stored it
    python bench/produce.py floor FILE            # same reading, chunking and queue; tasks do nothing
    python bench/produce.py naive FILE --rows N   # one Celery task per row, for the first N rows
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def peak_rss_mb() -> float | None:
    """This process's own peak resident memory: VmHWM of its address space. Not getrusage's ru_maxrss, which
    Linux carries over from the parent through fork and exec: run by bench/suite.py, it said the suite's own
    peak (about 179 MB once the suite had filled an outbox for its sink-alone runs) instead of the producer's
    (55 MB)."""
    from bench.suite import vm_hwm_mb

    return vm_hwm_mb("self")


def _wait_done(st, import_id: str, total: int) -> None:
    while int(st.imports.state(import_id).get("chunks_done", 0)) < total:
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["import", "floor", "naive"])
    parser.add_argument("file")
    parser.add_argument("--rows", type=int, default=20_000, help="naive: how many rows")
    parser.add_argument("--stored", action="store_true",
                        help="import: then wait until a sink has stored the whole import (stored_seconds)")
    parser.add_argument("--trigger", action="store_true",
                        help="import: a triggering import (--trigger, no window) with three campaigns on the file's "
                             "event names: one sent at once, one scheduled, one discarded (its delay is over)")
    parser.add_argument("--campaigns", type=int, choices=[1, 2, 3], default=3,
                        help="--trigger: only the first N of those campaigns")
    args = parser.parse_args()

    from bench import tasks as bench_tasks
    from producers import api
    from producers.queueing import queue_chunks
    from producers.split import chunks
    from worker.spec import ImportSpec, new_import_id

    context = api.default_context()
    settings, st = context.settings, context.store
    started = time.perf_counter()
    result: dict = {"mode": args.mode}
    if args.mode == "import":
        if args.trigger:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from generate import campaigns

            for campaign in campaigns(args.campaigns):
                st.triggers.add_campaign(campaign)
        handle = api.enqueue_import(args.file, create_people=True, trigger=args.trigger,
                                    trigger_window=None if args.trigger else "72h")
        result["queue_seconds"] = round(time.perf_counter() - started, 2)
        report = handle.wait(poll_s=0.02)
        result.update(rows=report["rows"], imported=report["imported"], duplicates=report["duplicates"],
                      errors=report["errors"], import_id=handle.import_id)
        if args.stored:
            reported = time.perf_counter() - started
            report = handle.wait(poll_s=0.02, stored=True)
            result.update(report_seconds=round(reported, 2), stored_seconds=round(time.perf_counter() - started, 2),
                          events_stored=report.get("events_stored"))
    else:
        # the floor reads the file as an import does (one pass, its chunks kept while scanning)
        source, plan = api.inspect(args.file, keep_chunks=args.mode == "floor")
        import_id = new_import_id()
        spec = ImportSpec(import_id=import_id, columns=plan.columns, identifier=plan.identifier,
                          source=args.file, create_people=True)
        st.imports.create(spec, {"rows_expected": plan.rows}, settings.retention_s)
        with source:
            if args.mode == "floor":
                total = queue_chunks(st, bench_tasks.floor_chunk, source, plan, import_id, settings)
                rows = plan.rows
            else:
                total = 0
                for chunk in chunks(source, plan, 1000):
                    for cells, row in zip(chunk.rows, chunk.row_numbers):
                        if total < args.rows:
                            bench_tasks.naive_row.apply_async((import_id, row, cells))
                            total += 1
                    if total >= args.rows:
                        break
                rows = total
        result["queue_seconds"] = round(time.perf_counter() - started, 2)
        _wait_done(st, import_id, total)
        result.update(rows=rows, tasks=total, import_id=import_id)
    elapsed = time.perf_counter() - started
    result.update(seconds=round(elapsed, 2), rows_per_second=round(result["rows"] / elapsed),
                  peak_rss_mb=peak_rss_mb())
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
