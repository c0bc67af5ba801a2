"""The events core alone, per row: validate, then assemble (people known, id memory empty), best of N.

    python bench/core_steps.py [--rows 100000] [--chunk-rows 2000] [--repeat 6]

No Redis, no queue: one process runs :func:`worker.events.chunk.validate` and
:func:`~worker.events.chunk.assemble` (the import told nothing of its event ids, as the pipeline
first assembles) over the seeded benchmark file's chunks, with the collector tuned as in a
worker, and prints the best microseconds a row of each step over ``--repeat`` passes (the
best, because this host's speed moves from one second to the next; compare two checkouts by
running them alternately).
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from generate import campaigns, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=6)
    parser.add_argument("--campaigns", type=int, choices=[0, 1, 2, 3], default=0,
                        help="a triggering import (no window) with the first N of generate.py's campaigns (0: passive)")
    args = parser.parse_args()

    from producers.api import inspect
    from producers.split import chunks
    from worker.events import chunk as core
    from worker.events import rules
    from worker.settings import Settings
    from worker.spec import ImportSpec

    path = Path(tempfile.mkdtemp(prefix="backfill-core-")) / "events.csv"
    with path.open("w", newline="") as out:
        generate(out, args.rows)
    source, plan = inspect(path, settings=Settings())
    spec = ImportSpec(import_id="core", columns=plan.columns, identifier=plan.identifier, create_people=True,
                      trigger=args.campaigns > 0, trigger_window_s=None if args.campaigns else 72 * 3600)
    index = rules.by_event(campaigns(args.campaigns))
    with source:
        loaded = [(c.rows, c.row_numbers) for c in chunks(source, plan, args.chunk_rows)]
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    best = [float("inf"), float("inf")]
    for _ in range(args.repeat):
        spent = [0.0, 0.0]
        for rows, numbers in loaded:
            at = time.time()
            t0 = time.perf_counter()
            validated = core.validate(spec, rows, numbers, at, 300)
            t1 = time.perf_counter()
            existing = {e.person_key: "1" for e in validated.events}
            t2 = time.perf_counter()
            core.assemble(spec, validated, rows, numbers, existing, index, at, 300, {})
            spent[0] += t1 - t0
            spent[1] += time.perf_counter() - t2
        best = [min(b, s * 1e6 / args.rows) for b, s in zip(best, spent)]
    print(f"{args.rows:,} rows in chunks of {args.chunk_rows:,}, best of {args.repeat}: "
          f"validate {best[0]:.2f} us/row, assemble {best[1]:.2f} us/row, together {sum(best):.2f}")


if __name__ == "__main__":
    main()
