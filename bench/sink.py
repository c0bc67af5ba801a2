"""The sink alone: a stream pre-filled with committed chunks' events, drained into the results store.

    python bench/sink.py [--events 1000000] [--chunk 2000] [--batch 50]

Fills a private redis-server's events stream with entries shaped as commit.lua writes them
(one entry per chunk, its events a JSON array, events like the benchmark file's), then times
one sink draining it into a fresh SQLite file: events/s, and what is left in the stream.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50, help="entries a transaction")
    parser.add_argument("--postgres", action="store_true", help="into a private PostgreSQL instead of SQLite")
    args = parser.parse_args()

    import redis

    from worker import keys
    from worker.sink.drain import drain_once
    from worker.sink.sqlite import SQLiteResults
    from worker.store.embedded import start_private
    from worker.store.outbox import Outbox

    work = Path(tempfile.mkdtemp(prefix="backfill-sink-"))
    server, url = start_private(work / "redis")
    try:
        client = redis.Redis.from_url(url)
        pipe = client.pipeline(transaction=False)
        for chunk, start in enumerate(range(0, args.events, args.chunk)):
            events = [{"import": "bench", "row": n + 2, "name": "Completes checkout",
                       "person": {"email": f"person{n % 50_000}@example.com"}, "timestamp": 1_700_000_000 + n,
                       "data": {"item_type": "shirt", "price": "19.99", "currency": "EUR"}, "id": f"evt-{n}"}
                      for n in range(start, min(start + args.chunk, args.events))]
            pipe.xadd(keys.OUTBOX, {"import": "bench", "chunk": chunk, "count": len(events),
                                           "events": orjson.dumps(events)})
            if chunk % 50 == 49:
                pipe.execute()
        pipe.execute()
        if args.postgres:
            from tests.integration.postgres import start_postgres
            from worker.sink.postgres import PostgresResults

            pg_url, stop_pg = start_postgres()
            results, kind = PostgresResults(pg_url), "PostgreSQL"
        else:
            results, kind, stop_pg = SQLiteResults(work / "results.db"), "SQLite", (lambda: None)
        results.upgrade()
        outbox = Outbox(client, "bench-sink")
        outbox.ensure_group()
        started = time.perf_counter()
        stored = 0
        while True:
            drained = drain_once(outbox, results, batch=args.batch, block_ms=10, claim_idle_ms=60_000)
            if not drained.entries:
                break
            stored += drained.new_events
        seconds = time.perf_counter() - started
        results.close()
        stop_pg()
        print(f"sink, {kind}: {stored:,} events in {seconds:.2f} s = {stored / seconds:,.0f} events/s "
              f"({args.chunk}-event entries, {args.batch} entries a transaction); "
              f"stream left: {client.xlen(keys.OUTBOX)} entries")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
