"""The chaos harness's producer: ``python -m tests.chaos.produce FILE [--twice] [options]``.

Runs in its own process (with the cluster's ``REDIS_URL``), enqueues the file with
``--create-people`` (and ``--trigger``, when given) and prints the import id. ``--twice`` publishes every chunk task
twice, as a broker that duplicates deliveries would; ``--drop-every N`` never publishes
every Nth one, as a broker that loses messages would.
"""
from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--twice", action="store_true")
    parser.add_argument("--drop-every", type=int, default=0, help="never publish every Nth chunk task")
    parser.add_argument("--kind", default="events")
    parser.add_argument("--trigger", action="store_true", help="a triggering import")
    args = parser.parse_args()

    from producers.api import enqueue_import
    from worker import tasks

    if args.twice:
        send = tasks.process_chunk.apply_async

        def twice(*a, **kw):
            send(*a, **kw)
            return send(*a, **kw)

        tasks.process_chunk.apply_async = twice
    if args.drop_every:
        publish, sent = tasks.process_chunk.apply_async, [0]

        def lossy(*a, **kw):  # a message lost between the producer and a worker (celery#7950)
            sent[0] += 1
            return None if sent[0] % args.drop_every == 0 else publish(*a, **kw)

        tasks.process_chunk.apply_async = lossy
    options = {"create_people": True, "trigger": args.trigger} if args.kind == "events" else {"kind": "people"}
    print(enqueue_import(args.path, **options).import_id, flush=True)


if __name__ == "__main__":
    main()
