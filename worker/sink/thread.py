"""A sink inside a worker's main process (``backfill worker`` runs one unless --no-sink), so a
one-machine setup needs nothing more. A prefork worker's main process only hands tasks to its
children: the sink thread has it to itself. Several workers running sinks is fine (see drain).
"""
from __future__ import annotations

import os
import socket
import threading

from worker.logs import get_logger
from worker.settings import Settings

log = get_logger("backfill.sink")
_stop = threading.Event()


def start(redis_client, settings: Settings) -> threading.Thread | None:
    """Start the sink thread; None (said in the log) when the results store cannot be opened."""
    from worker.sink.drain import run
    from worker.sink.results import open_results
    from worker.store.outbox import Outbox

    try:
        results = open_results(settings)
        results.check()
    except Exception as exc:  # noqa: BLE001 - the worker runs without its sink; the log says why
        log.error("sink not started", error=str(exc))
        return None
    consumer = f"{socket.gethostname()}-{os.getpid()}-worker"

    def loop() -> None:
        try:
            run(Outbox(redis_client, consumer), results, batch=settings.sink_batch, block_ms=settings.sink_block_ms,
                claim_idle_ms=settings.sink_claim_idle_ms, stop=_stop.is_set)
        finally:
            results.close()

    thread = threading.Thread(target=loop, name="backfill-sink", daemon=True)
    thread.start()
    log.info("sink started", consumer=consumer)
    return thread


def stop() -> None:
    """Ask the sink thread to stop after its batch (what it read and did not store is claimed later)."""
    _stop.set()
