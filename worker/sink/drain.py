"""The sink's loop: outbox entries in, one database transaction per batch, then acknowledged.

Order of a batch: claim what a dead sink left (XAUTOCLAIM), else read new entries; write their
rows in one transaction; acknowledge; trim what every group acknowledged. A batch the database
refuses for what it holds is split until the entries refused are found (worker/sink/split.py):
those are set aside as dead letters, the rest is stored. A sink that dies
between the write and the acknowledgement leaves its batch pending: another sink (or itself,
restarted) claims it after ``claim_idle_ms`` and writes it again, harmlessly.

Several sinks may run, their batches in parallel and in any order, because no write depends on
the order it arrives in: events and import records are inserted once (unique keys); a person
carries its version and a row is replaced only by a higher one; a delivery goes from
"scheduled" to "sent" and never back. What keeps an order is upstream: a people import's chunks
commit in file order in Redis, and that order is in the versions.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import redis

from worker.errors import ConfigError, RedisMisconfigured
from worker.logs import get_logger
from worker.sink.split import write_entries
from worker.store import clock
from worker.store.guard import Guard
from worker.store.outbox import Outbox, dead_fields

log = get_logger("backfill.sink")
#: How often a running sink checks that its store is still the one registered in Redis (registry.py).
GUARD_EVERY_S = 30.0


@dataclasses.dataclass(slots=True)
class Drained:
    """What one batch did."""

    entries: int = 0
    events: int = 0
    new_events: int = 0
    claimed: bool = False
    #: entries the database refused, set aside as dead letters
    dead: int = 0
    #: events not stored because another event held their dedupe key (claims.py)
    late_duplicates: int = 0


def drain_once(outbox: Outbox, results, *, batch: int, block_ms: int, claim_idle_ms: int) -> Drained:
    """One batch: claimed or read, written, acknowledged, trimmed."""
    entries = outbox.claim_dead(claim_idle_ms, batch)
    drained = Drained(claimed=bool(entries))
    if not entries:
        entries = outbox.read(batch, block_ms)
    if not entries:
        return drained
    written = write_entries(entries, lambda batch: results.write(batch, undone=outbox.undone))
    drained.entries, drained.events, drained.new_events = len(entries), written.events, written.new_events
    drained.late_duplicates = written.late_duplicates
    outbox.ack(written.stored)
    for entry_id, import_id, *_, late in written.stored:
        if late:
            log.warning("late duplicates: events Redis imported again after forgetting their dedupe marks (a host "
                        "crash rolled it back); the database keeps the first and did not store these",
                        entry=entry_id.decode(), import_id=import_id, late_duplicates=late)
    if written.refused:
        drained.dead = outbox.set_aside(written.refused, clock.now_ms(outbox.r))
        for (entry_id, fields), message in written.refused:
            log.error("outbox entry refused by the results database: set aside as a dead letter",
                      entry=entry_id.decode(), import_id=fields.get(b"import", b"").decode(errors="replace"),
                      error=message)
    outbox.trim()
    return drained


def retry_dead(dead: Outbox, results, undone, *, batch: int) -> tuple[int, list[tuple[bytes, bytes, str]]]:
    """Write the dead letters again (``backfill sink --retry-dead``, after the cause is fixed): those the
    database takes now are stored and removed, the others stay with their message. Returns (how many were
    stored, (dead-letter id, import id, message) of each left). ``undone``: as the sink's (Outbox.undone)."""
    stored, left = 0, []
    after: bytes | str = "-"
    while page := dead.page(after, batch):
        after = page[-1][0]
        entries = [(entry_id, dead_fields(fields)[0]) for entry_id, fields in page]
        written = write_entries(entries, lambda rows: results.write(rows, undone=undone))
        stored += dead.ack(written.stored)
        left += [(entry_id, fields.get(b"import", b""), message) for (entry_id, fields), message in written.refused]
    return stored, left


def run(outbox: Outbox, results, *, batch: int, block_ms: int, claim_idle_ms: int,
        stop: Callable[[], bool] = lambda: False, retry_max_s: float = 30.0,
        on_turn: Callable[[], None] | None = None, guard: Guard | None = None,
        registered: Callable[[], object] | None = None, registered_every_s: float = GUARD_EVERY_S) -> None:
    """Drain until ``stop()``; a database or Redis that fails transiently is retried with backoff (the
    outbox keeps what is not stored). ``on_turn`` is called at every turn, retries included (a liveness
    sign: the sink is not stuck). ``guard`` (the store's) is checked at every turn, at most every
    BACKFILL_REDIS_CHECK_S: while Redis evicts keys the sink stores nothing and does not count as running;
    once Redis lost its data, its consumer group is created again, as when the group is found missing.
    ``registered`` is called every ``registered_every_s``: a ConfigError it raises (this sink's store is
    no longer the registered one) ends the loop, raised."""
    pause = 0.5
    ready = False
    registered_at = time.monotonic() + registered_every_s
    while not stop():
        if on_turn:
            on_turn()
        if registered is not None and time.monotonic() >= registered_at:
            registered_at = time.monotonic() + registered_every_s
            try:
                registered()
            except ConfigError:
                raise
            except Exception:  # noqa: BLE001 - Redis away: the batch below says so, and retries
                pass
        try:
            if guard is not None and guard.check():
                ready = False  # the outbox and its group went with Redis's data
            if not ready:
                outbox.ensure_group()
                ready = True
            outbox.beat()
            drained = drain_once(outbox, results, batch=batch, block_ms=block_ms, claim_idle_ms=claim_idle_ms)
            pause = 0.5
        except RedisMisconfigured:  # (said by the guard when found) stays so until the policy is fixed
            time.sleep(min(retry_max_s, 1.0))
            continue
        except Exception as exc:  # noqa: BLE001 - logged, retried: nothing is acknowledged that is not stored
            if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                # the group is gone (Redis lost its data, or the stream was deleted): make it again, go on
                log.warning("the outbox's consumer group is gone: creating it again", error=str(exc))
                ready = False
                continue
            log.warning("sink failed; retrying", error=f"{type(exc).__name__}: {exc}", retry_in_s=pause)
            time.sleep(pause)
            pause = min(pause * 2, retry_max_s)
            continue
        if drained.claimed:
            log.warning("claimed a dead sink's entries", entries=drained.entries)
        if drained.entries:
            log.debug("stored", entries=drained.entries, events=drained.events, new=drained.new_events)
