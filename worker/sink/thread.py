"""A sink inside a worker's main process (``backfill worker`` runs one unless --no-sink), so a
one-machine setup needs nothing more. A prefork worker's main process only hands tasks to its
children: the sink thread has it to itself. Several workers running sinks is fine (see drain), as long
as they write one store: the first registers it in Redis, a sink on another store does not start
(registry.py), and the worker goes on processing chunks.
"""
from __future__ import annotations

import os
import socket
import threading

from worker.logs import get_logger
from worker.settings import Settings

log = get_logger("backfill.sink")
_stop = threading.Event()


def start(redis_client, settings: Settings, guard=None) -> threading.Thread:
    """Start the sink thread. It opens the results store itself, trying again while the database does
    not answer; a configuration it cannot work with (`backfill worker` refuses those before it starts)
    is logged and ends the thread. ``guard``: the store's (see :func:`worker.sink.drain.run`)."""
    from worker.errors import ConfigError
    from worker.sink.drain import run
    from worker.sink.registry import claim
    from worker.sink.results import open_when_it_answers
    from worker.store.outbox import Outbox

    consumer = f"{socket.gethostname()}-{os.getpid()}-worker"

    def loop() -> None:
        try:  # (another store registered: refused, a ConfigError)
            results = open_when_it_answers(settings, _stop.wait, also=lambda found: claim(redis_client, found))
        except ConfigError as exc:
            log.error("sink not started", error=str(exc))
            return
        if results is None:
            return  # stopped while it waited
        try:
            run(Outbox(redis_client, consumer), results, batch=settings.sink_batch, block_ms=settings.sink_block_ms,
                claim_idle_ms=settings.sink_claim_idle_ms, stop=_stop.is_set, guard=guard,
                registered=lambda: claim(redis_client, results))
        except ConfigError as exc:
            log.error("sink stopped", error=str(exc))
        finally:
            results.close()

    thread = threading.Thread(target=loop, name="backfill-sink", daemon=True)
    thread.start()
    log.info("sink started", consumer=consumer)
    return thread


def stop() -> None:
    """Ask the sink thread to stop after its batch (what it read and did not store is claimed later)."""
    _stop.set()
