"""The producer's scan alone, and what reading its chunks back costs a worker. One process, no Redis.

    python bench/scan.py FILE [--repeat 3] [--chunk-rows 2000]

Scans FILE as an import does (sniff, the byte check, the scan keeping its chunks: CPU seconds,
best of ``--repeat``), then reads every kept chunk as a worker does (:func:`worker.store.work.decode_rows`
of the file's own text, :mod:`worker.raw`) against the same chunks stored as rows (orjson, what
chunks were before), microseconds a row, and their stored bytes. Run two checkouts alternately to
compare them: the figures move with the machine's load.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _best(repeat: int, work) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=2000)
    args = parser.parse_args()

    import dataclasses

    from producers.api import inspect
    from producers.split import chunks
    from worker.settings import get_settings
    from worker.store.work import decode_rows, encode_rows

    settings = dataclasses.replace(get_settings(), chunk_rows=args.chunk_rows)
    found: dict = {}

    def scan() -> None:
        source, plan = inspect(args.file, settings=settings, keep_chunks=True)
        found.update(source=source, plan=plan)

    scanning = _best(args.repeat, scan)
    source, plan = found["source"], found["plan"]
    with source:
        kept = [chunk.payload for chunk in source.spool.chunks()] if source.spool else []
        as_rows = [encode_rows(c.rows, c.row_numbers) for c in chunks(source, plan, args.chunk_rows)]
    rows = plan.rows

    def read(payloads: list[bytes]) -> float:
        def each() -> None:
            for payload in payloads:  # (one chunk's rows alive at a time, as in a worker)
                decode_rows(payload)

        return _best(args.repeat, each) * 1e6 / rows

    print(f"{rows:,} rows: scan (sniff, byte check, scan, chunks kept) {scanning:.2f} s CPU, "
          f"{scanning * 1e6 / rows:.2f} us a row")
    if kept:
        print(f"a worker reading the chunks back: {read(kept):.2f} us a row as kept ({sum(map(len, kept)):,} bytes); "
              f"{read(as_rows):.2f} us a row as rows, orjson ({sum(map(len, as_rows)):,} bytes)")


if __name__ == "__main__":
    main()
