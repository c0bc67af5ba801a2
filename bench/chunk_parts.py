"""Where a chunk task's time goes: validate, people lookup, assemble (rules + encoding), commit.

    python bench/chunk_parts.py [--rows 100000] [--chunk-rows 2000] [--type people [--dry-run]]

With ``--type people``, a people file's steps instead, chunk after chunk in file order:
validate, snapshot (the directory entries and people the rows touch), decide
(the rules in file order), commit (people_commit.lua); ``--dry-run``: as a dry run's
(its snapshot reads its shadow directory, then the real one).

Generates a seeded events file, then runs the chunk task's four steps in this
process against a private redis-server, chunk after chunk, and prints the
milliseconds per chunk of each (wall time; the commit includes Redis running
commit.lua), and the microseconds Redis spent per chunk in each command. The
collector is tuned as in a worker (gc.freeze, threshold 100,000).
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from generate import campaigns, generate, generate_people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=2000)
    parser.add_argument("--type", dest="kind", choices=["events", "people"], default="events")
    parser.add_argument("--campaigns", type=int, choices=[0, 1, 2, 3], default=0,
                        help="a triggering import (no window) with the first N of generate.py's campaigns (0: passive)")
    parser.add_argument("--dry-run", action="store_true", help="with --type people: the import is a dry run")
    args = parser.parse_args()

    from producers.api import inspect
    from producers.split import chunks
    from worker.events import chunk as core
    from worker.events import rules
    from worker.settings import Settings
    from worker.spec import ImportSpec
    from worker.store import Store, connect
    from worker.store.embedded import start_private

    work = Path(tempfile.mkdtemp(prefix="backfill-parts-"))
    path = work / "events.csv"
    with path.open("w", newline="") as out:
        (generate_people if args.kind == "people" else generate)(out, args.rows)
    server, url = start_private(work / "redis")
    try:
        st = Store(connect(url))
        if args.kind == "people":
            totals, chunks_run = _people(st, path, args.chunk_rows, args.dry_run)
            _print(st, args, totals, chunks_run)
            return
        source, plan = inspect(path, settings=Settings())
        spec = ImportSpec(import_id="parts", columns=plan.columns, identifier=plan.identifier, create_people=True,
                          trigger=args.campaigns > 0, trigger_window_s=None if args.campaigns else 72 * 3600)
        index = rules.by_event(campaigns(args.campaigns))
        st.imports.create(spec, {}, 3600)
        with source:
            loaded = [(c.rows, c.row_numbers) for c in chunks(source, plan, args.chunk_rows)]
        st.r.config_resetstat()
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        totals = dict.fromkeys(("validate", "lookup", "assemble", "commit"), 0.0)
        redis_before = _cpu(server.pid)
        for number, (rows, numbers) in enumerate(loaded):
            at = time.time()
            t0 = time.perf_counter()
            validated = core.validate(spec, rows, numbers, at, 300)
            t1 = time.perf_counter()
            # the pipeline's read: the chunk's people (the commit tells what the import remembers of its ids)
            existing = st.events.existing_people(spec.identifier, list({e.person_key for e in validated.events}))
            seen_ids: dict[bytes, bytes] = {}
            t2 = time.perf_counter()
            outcome = core.assemble(spec, validated, rows, numbers, existing, index, at, 300, seen_ids)
            t3 = time.perf_counter()
            st.events.commit(spec, number, outcome, at_ms=round(at * 1000), retention_s=3600)
            t4 = time.perf_counter()
            for name, spent in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                totals[name] += spent
        redis_cpu = _cpu(server.pid) - redis_before
        _print(st, args, totals, len(loaded))
        print(f"redis-server CPU during the chunks: {redis_cpu * 1e6 / args.rows:.2f} us a row")
    finally:
        server.kill()
        server.wait()


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has spent."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _people(st, path: Path, chunk_rows: int, dry_run: bool) -> tuple[dict[str, float], int]:
    """A people import's steps, chunk after chunk in file order: seconds spent in each (the steps of
    worker/people/pipeline.py's apply_chunk, less its problem rows: about 1 % of this file's rows)."""
    from producers.api import inspect
    from producers.split import chunks
    from worker.people.directory import apply_rows
    from worker.people.pipeline import rules_of, validate
    from worker.settings import Settings
    from worker.spec import ImportSpec

    source, plan = inspect(path, kind="people", settings=Settings())
    spec = ImportSpec(import_id="parts", columns=plan.columns, identifier=plan.identifier, kind="people",
                      dry_run=dry_run)
    st.imports.create(spec, {}, 3600)
    with source:
        loaded = [(c.rows, c.row_numbers) for c in chunks(source, plan, chunk_rows)]
    st.r.config_resetstat()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    totals = dict.fromkeys(("validate", "snapshot", "decide", "commit"), 0.0)
    for number, (rows, numbers) in enumerate(loaded):
        at = time.time()
        t0 = time.perf_counter()
        validated = validate(spec, rows, numbers)
        t1 = time.perf_counter()
        snap = st.people.snapshot(spec, validated.rows)
        t2 = time.perf_counter()
        changes = apply_rows(validated.rows, snap, rules_of(spec, at))
        t3 = time.perf_counter()
        done = st.people.commit(spec, number, changes, [], [], at_ms=round(at * 1000), retention_s=3600)
        t4 = time.perf_counter()
        assert done.status == 1, done
        for name, spent in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            totals[name] += spent
    return totals, len(loaded)


def _print(st, args, totals: dict[str, float], chunks_run: int) -> None:
    per_chunk = {name: round(spent * 1000 / chunks_run, 2) for name, spent in totals.items()}
    print(f"{args.rows:,} {args.kind} rows{' (a dry run)' if args.dry_run else ''}, {chunks_run} chunks of {args.chunk_rows:,}: ms per chunk")
    for name, ms in per_chunk.items():
        print(f"  {name:<9}{ms:>8}")
    print(f"  {'total':<9}{round(sum(per_chunk.values()), 2):>8}")
    stats = st.r.info("commandstats")
    print("Redis, microseconds per chunk: " + ", ".join(
        f"{name.split('_', 1)[1]} {stats[name]['usec'] / chunks_run:,.0f}"
        for name in sorted(stats, key=lambda n: -stats[n]["usec"]) if stats[name]["usec"] / chunks_run >= 10))


if __name__ == "__main__":
    main()
