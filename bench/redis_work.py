"""Redis's work a row of an events import, counted in instructions: the chunk's lookup and commit, chunk
after chunk in one process, against a private redis-server run under valgrind's callgrind.

    python bench/redis_work.py [--rows 60000] [--chunk-rows 2000] [--top 0]

CPU seconds on a shared machine move 2x between runs (other work, the caches it shares); the
instructions a program runs do not, so two checkouts compare by this figure run once each (a run
takes a minute: callgrind slows Redis ~50x). Counted from the first lookup to the last commit
(callgrind_control zeroes, then dumps); validation and assembly run before and between, in Python,
outside Redis. ``--top N`` prints the N functions of Redis that ran the most (inclusive). Needs
valgrind (callgrind, callgrind_control, callgrind_annotate).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from generate import campaigns, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--chunk-rows", type=int, default=2000)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("--campaigns", type=int, choices=[0, 1, 2, 3], default=0,
                        help="a triggering import (no window) with the first N of generate.py's campaigns (0: passive)")
    args = parser.parse_args()

    import redis

    from producers.api import inspect
    from producers.split import chunks
    from worker.events import chunk as core
    from worker.events.pipeline import commit_validated
    from worker.settings import Settings
    from worker.spec import ImportSpec
    from worker.store import Store, connect

    work = Path(tempfile.mkdtemp(prefix="backfill-work-"))
    path = work / "events.csv"
    with path.open("w", newline="") as out:
        generate(out, args.rows)
    server, url, counted = start_counted(work)
    try:
        wait_up(redis.Redis.from_url(url))
        st = Store(connect(url))
        settings = Settings()
        source, plan = inspect(path, settings=settings)
        spec = ImportSpec(import_id="work", columns=plan.columns, identifier=plan.identifier, create_people=True,
                          trigger=args.campaigns > 0, trigger_window_s=None if args.campaigns else 72 * 3600)
        for campaign in campaigns(args.campaigns):
            st.triggers.add_campaign(campaign)  # (the pipeline reads them a chunk, as a worker does)
        st.imports.create(spec, {}, 3600)
        with source:
            loaded = [(c.rows, c.row_numbers) for c in chunks(source, plan, args.chunk_rows)]
        at = time.time()
        validated = [core.validate(spec, rows, numbers, at, settings.clock_skew_s) for rows, numbers in loaded]
        st.r.ping()  # (the script is loaded by its first commit, inside the count, as in a worker)
        subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
        for number, ((rows, numbers), valid) in enumerate(zip(loaded, validated)):
            # the worker's own reads (the chunk's people) and commit, again when told of the import's ids
            commit_validated(st, spec, number, valid, rows, numbers, settings, at)
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True)
        dump = Path(f"{counted}.1")
        total = dump_total(dump)
        print(f"{args.rows:,} events rows, {len(loaded)} chunks: redis-server ran {total / args.rows:,.0f} "
              f"instructions a row (lookup + commit)")
        if args.top:
            shown = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(dump)], check=True,
                                   capture_output=True, text=True).stdout.splitlines()
            rows_of = [line for line in shown if "%)" in line and ":" in line]
            for line in rows_of[:args.top]:
                print(line[:160])
    finally:
        server.terminate()
        server.wait()


def start_counted(work: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A private redis-server (no persistence) under callgrind: the process, its URL, and the path its dumps
    take (``callgrind_control -d`` writes ``<path>.1``, ``.2``, ...)."""
    from worker.settings import Settings
    from worker.store.embedded import free_port, server_binary

    port, counted = free_port(), work / "callgrind.out"
    server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={counted}",
                               server_binary(Settings.from_env().redis_server),
                               "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return server, f"redis://127.0.0.1:{port}/0", counted


def dump_total(dump: Path) -> int:
    """The instructions a callgrind dump counts, once it is written whole."""
    for _ in range(300):
        if dump.exists() and "totals:" in dump.read_text(errors="replace"):
            break
        time.sleep(0.1)
    return next(int(line.split()[1]) for line in dump.read_text(errors="replace").splitlines()
                if line.startswith("totals:"))


def wait_up(client) -> None:
    """Until the server under valgrind answers (it starts in seconds, not milliseconds)."""
    for _ in range(600):
        try:
            client.ping()
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    raise SystemExit("redis-server under valgrind did not start")


if __name__ == "__main__":
    main()
