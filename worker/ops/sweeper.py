"""The sweeper: work that went quiet is sent again.

Celery on Redis delivers at least once, but not always: a message popped by a
worker that dies before recording it is gone (celery#7950, kombu#1836), and a
worker killed outright gives its message back only after the broker's visibility
timeout. So every stored chunk, and every report due, is *pending work* in one
sorted set (``keys.PENDING``), scored by its last sign of life: queued, started.
Commits and the report remove their member atomically with what they write.
Beat runs :func:`sweep` every ``BACKFILL_SWEEP_EVERY_S``; whatever has shown no
life for ``BACKFILL_REQUEUE_AFTER_S`` is sent again. Sending twice is safe: a
chunk commits once (its done-set) and a report is written once.

A Redis rolled back (a host crash with the AOF synced every second) can forget chunks altogether: their
rows, pending entry and commit all lost while the producer went on to record its total. Those would
leave their import running forever, so the sweeper also looks, every ``BACKFILL_REQUEUE_AFTER_S``, at
each import whose chunks are all queued and fails the chunks it lost (``fail_lost``): the import ends
partially_failed, its report counting them (``chunks_lost``, ``rows_lost``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from worker import keys
from worker.logs import bind_chunk, get_logger
from worker.store import Store

log = get_logger("backfill.sweeper")


@dataclasses.dataclass(slots=True)
class Swept:
    """What one sweep did."""

    chunks: int = 0
    reports: int = 0
    notifications: int = 0
    dropped: int = 0
    #: imports ended as interrupted: their producer went silent before recording its total
    interrupted: int = 0
    #: chunks Redis lost (rolled back) after their import's total was recorded, failed
    lost: int = 0


def sweep(st: Store, requeue_after_s: float, *, send_chunk: Callable[[str, int], None],
          send_report: Callable[[str], None], fail_chunk: Callable[[str, int], None],
          send_notify: Callable[[str], None], producer_timeout_s: float, limit: int = 1000,
          fail_lost: Callable[[str, int], None] | None = None) -> Swept:
    """Send again the pending work quiet for ``requeue_after_s``, and end the imports whose producer
    has been silent for ``producer_timeout_s``; returns what it did.

    ``fail_chunk`` is called for a chunk whose rows are gone (expired) before it
    committed, so its import completes instead of waiting for it forever; ``fail_lost`` for a chunk
    Redis lost altogether (see above).
    """
    swept = Swept()
    now_ms = int(st.now() * 1000)  # Redis's clock, which every sign of life was written by
    if fail_lost is not None:
        for import_id in st.work.closing(now_ms - int(requeue_after_s * 1000)):
            with bind_chunk(import_id):
                for chunk in st.work.lost_chunks(import_id):
                    log.error("chunk lost by Redis before its commit (rolled back: a host crash?): the chunk is "
                              "failed, its rows are counted as lost", chunk=chunk)
                    fail_lost(import_id, chunk)
                    swept.lost += 1
    for import_id in st.work.silent_producers(now_ms - int(producer_timeout_s * 1000)):
        with bind_chunk(import_id):
            stopped, due = st.imports.stop(import_id, "interrupted")
            if stopped == 1:
                log.warning("the producer went silent before queueing every row: the import ends as interrupted "
                            "with what it queued", silent_s=producer_timeout_s)
                swept.interrupted += 1
            if due:
                send_report(import_id)
    for import_id, part in st.work.stale(now_ms - int(requeue_after_s * 1000), limit):
        with bind_chunk(import_id):
            if not st.imports.state(import_id):  # the import expired: nothing can happen any more
                st.work.drop(import_id, part)
                swept.dropped += 1
                continue
            if part in (keys.REPORT, keys.NOTIFY):
                if st.work.touch(import_id, part):
                    log.warning(f"{part} sent again: its message was lost or its worker died")
                    (send_report if part == keys.REPORT else send_notify)(import_id)
                    swept.reports += part == keys.REPORT
                    swept.notifications += part == keys.NOTIFY
                continue
            chunk = int(part)
            if st.work.chunk_done(import_id, chunk):  # (its commit removes it: a race with this sweep)
                st.work.drop(import_id, part)
                continue
            if not st.work.has_rows(import_id, chunk):
                log.error("chunk rows gone before their commit: the chunk is failed", chunk=chunk)
                fail_chunk(import_id, chunk)
                swept.dropped += 1
                continue
            if st.work.touch(import_id, part):
                log.warning("chunk sent again: its message was lost or its worker died", chunk=chunk)
                send_chunk(import_id, chunk)
                swept.chunks += 1
    return swept
