"""The sink alone: a stream pre-filled with committed chunks' events, drained into the results store.

    python bench/sink.py [--events 1000000] [--chunk 2000] [--batch 50] [--sinks 1] [--postgres]

Fills a private redis-server's outbox with entries shaped as commit.lua writes them (one entry
per chunk, its events' JSON joined by newlines and its people's cio_ids, events like the benchmark
file's: an e-mail, a name, a time, an id, three properties), then times ``--sinks`` sink processes
draining it into a fresh SQLite file (or a private PostgreSQL): events/s, and what is left in the
stream. The script a user would write (bench/reference.py) runs before and after on a generated
Vero file of as many rows, and the sink's events/s is also given as a ratio of its rows/s (the mean).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]


def fill(client, events: int, chunk: int, with_keys: bool = True) -> None:
    """The outbox as ``events`` committed events in ``chunk``-event entries (``with_keys``: with their dedupe
    keys, as commit.lua writes them, so the sink claims each key: worker/sink/claims.py)."""
    import hashlib

    from worker import keys

    pipe = client.pipeline(transaction=False)
    for number, start in enumerate(range(0, events, chunk)):
        blobs = [orjson.dumps({"import": "bench", "row": n + 2, "name": "Completes checkout",
                               "person": {"email": f"person{n % 50_000}@example.com"}, "timestamp": 1_700_000_000 + n,
                               "data": {"item_type": "shirt", "price": "19.99", "currency": "EUR"}, "id": f"evt-{n}"})
                 for n in range(start, min(start + chunk, events))]
        cio = {f"person{n % 50_000}@example.com": f"{0xa0000000 + n % 50_000:x}"
               for n in range(start, min(start + chunk, events))}  # (the people the chunk names, as commit.lua adds)
        fields = {"import": "bench", "chunk": number, "count": len(blobs), "events": b"\n".join(blobs),
                  "cio": orjson.dumps(cio)}
        if with_keys:
            fields["keys"] = b"".join(hashlib.blake2b(b"id\0evt-%d" % n, digest_size=10).digest()
                                      for n in range(start, min(start + chunk, events)))
            fields["hours"] = "472222:472942"
        pipe.xadd(keys.OUTBOX, fields)
        if number % 50 == 49:
            pipe.execute()
    pipe.execute()


def _sink(redis_url: str, database_url: str, batch: int, name: str, ready, go, counts) -> None:
    """One sink process: drain until the outbox is empty; its new events in ``counts``."""
    import redis

    from worker.settings import Settings
    from worker.sink.drain import drain_once
    from worker.sink.results import open_results
    from worker.store.outbox import Outbox

    results = open_results(Settings(database_url=database_url))
    outbox = Outbox(redis.Redis.from_url(redis_url), name)
    ready.put(name)
    go.wait()
    cpu = time.process_time()
    stored = 0
    while True:
        drained = drain_once(outbox, results, batch=batch, block_ms=10, claim_idle_ms=600_000)
        if not drained.entries:
            break
        stored += drained.new_events
    counts.put((stored, time.process_time() - cpu))
    results.close()


def drain(redis_url: str, database_url: str, sinks: int, batch: int) -> tuple[float, int, float]:
    """(seconds, events stored, the sinks' CPU seconds) for ``sinks`` processes draining the outbox into
    ``database_url`` (upgraded first), timed from when they all start."""
    import multiprocessing

    import redis

    from worker.settings import Settings
    from worker.sink.results import open_results
    from worker.store.outbox import Outbox

    results = open_results(Settings(database_url=database_url), create=True)
    results.upgrade()
    results.close()
    Outbox(redis.Redis.from_url(redis_url), "setup").ensure_group()
    context = multiprocessing.get_context("spawn")
    ready, go, counts = context.Queue(), context.Event(), context.Queue()
    processes = [context.Process(target=_sink, args=(redis_url, database_url, batch, f"bench-{n}", ready, go, counts))
                 for n in range(sinks)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get()  # every process imported and connected
    started = time.perf_counter()
    go.set()
    done = [counts.get() for _ in processes]
    seconds = time.perf_counter() - started
    for process in processes:
        process.join()
    return seconds, sum(n for n, _ in done), sum(cpu for _, cpu in done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50, help="entries a transaction")
    parser.add_argument("--postgres", action="store_true", help="into a private PostgreSQL instead of SQLite")
    parser.add_argument("--sinks", type=int, default=1, help="sink processes draining side by side")
    parser.add_argument("--no-keys", action="store_true",
                        help="entries without their events' dedupe keys (nothing claimed: the cost of the claims)")
    args = parser.parse_args()

    import redis
    from generate import generate
    from reference import import_file

    from worker import keys
    from worker.store.embedded import start_private

    work = Path(tempfile.mkdtemp(prefix="backfill-sink-"))
    with (work / "events.csv").open("w", newline="") as out:
        generate(out, args.events)
    references = [import_file(work / "events.csv", work / "reference-0.db")["rows_per_second"]]
    server, url = start_private(work / "redis")
    try:
        client = redis.Redis.from_url(url)
        fill(client, args.events, args.chunk, with_keys=not args.no_keys)
        if args.postgres:
            from tests.integration.postgres import start_postgres

            target, stop_pg = start_postgres()
            kind = "PostgreSQL"
        else:
            target, kind, stop_pg = f"sqlite:///{work / 'results.db'}", "SQLite", (lambda: None)
        seconds, stored, cpu = drain(url, target, args.sinks, args.batch)
        stop_pg()
        references.append(import_file(work / "events.csv", work / "reference-1.db")["rows_per_second"])
        reference = sum(references) / len(references)
        print(f"sink, {kind}: {stored:,} events in {seconds:.2f} s = {stored / seconds:,.0f} events/s "
              f"({args.chunk}-event entries, {args.batch} entries a transaction, {args.sinks} sink(s)), "
              f"the sinks' own CPU {cpu * 1e6 / max(stored, 1):.2f} us an event; "
              f"stream left: {client.xlen(keys.OUTBOX)} entries; the script a user would write: "
              f"{' and '.join(f'{r:,}' for r in references)} rows/s (before and after): "
              f"the sink = {stored / seconds / reference:.2f}x the script")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
