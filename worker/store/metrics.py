"""The shared figures behind the metrics endpoint: counters, the chunk-time histogram, queue depths.

Rows by outcome and finished imports are counted by the commit and report scripts
themselves; chunk times go to one histogram hash every worker process adds to. So
the figures are right however many processes and machines produced them, and
:meth:`Metrics.figures` reads them all in one round trip.
"""
from __future__ import annotations

import dataclasses

import redis

from worker import keys
from worker.redis_health import Epoch
from worker.store import clock
from worker.store.outbox import age_s

#: Upper bounds (seconds) of the chunk time histogram's buckets.
CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: A worker's clock skew is shown while it said so within this long (it says so every minute while it works).
CLOCK_SHOWN_MS = 10 * 60_000
#: A worker silent this long is forgotten from the clocks hash (by the next worker that reports).
CLOCK_KEPT_MS = 86_400_000


def bucket_of(seconds: float) -> str:
    """The histogram field counting ``seconds``: the smallest bound it does not exceed."""
    return next((repr(b) for b in CHUNK_BUCKETS if seconds <= b), "+Inf")


@dataclasses.dataclass(frozen=True, slots=True)
class Figures:
    """Everything the metrics endpoint shows, as read at one moment."""

    #: rows_<outcome>, imports_created, imports_<final status>
    counters: dict[str, int]
    #: histogram field (bucket bound, "+Inf", "sum", "count") -> value
    chunk_seconds: dict[str, str]
    #: queue name -> messages waiting
    queues: dict[str, int]
    pending: int
    #: age of the pending work with the oldest sign of life (0 when none)
    oldest_pending_s: float
    triggers_scheduled: int
    triggers_due: int
    #: how long the most silent producer still queueing has said nothing (0 when none queues)
    oldest_producer_s: float = 0.0
    #: outbox entries no sink has stored yet, and the age of the oldest (0 when none)
    outbox_entries: int = 0
    outbox_oldest_s: float = 0.0
    #: outbox entries set aside because the results database refused them, not yet stored again
    dead_letters: int = 0
    #: worker name -> how far its clock is ahead of Redis's (seconds; negative: behind), of the workers
    #: that said so lately
    clock_skews: dict[str, float] = dataclasses.field(default_factory=dict)
    #: Redis's maxmemory-policy as INFO says it ("" when it does not)
    maxmemory_policy: str = ""
    #: losses of Redis's data found by backfill's processes (epochs found gone), carried from epoch to epoch
    redis_data_lost: int = 0


class Metrics:
    """Writing chunk times; reading every shared figure."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def observe_chunk(self, seconds: float) -> None:
        """Count one chunk's processing time in the shared histogram."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hincrby(keys.CHUNK_SECONDS, bucket_of(seconds), 1)
        pipe.hincrbyfloat(keys.CHUNK_SECONDS, "sum", seconds)
        pipe.hincrby(keys.CHUNK_SECONDS, "count", 1)
        pipe.execute()

    def note_skew(self, worker: str, skew_s: float) -> None:
        """Record how far ``worker``'s clock is ahead of Redis's (the gauge reads it); forget the workers
        silent for :data:`CLOCK_KEPT_MS` (gone, or renamed by a restart)."""
        at = clock.now_ms(self.r)
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(keys.CLOCKS, worker, f"{skew_s:.3f} {at}")
        pipe.hgetall(keys.CLOCKS)
        gone = [name for name, (_, seen) in _skews(pipe.execute()[1]).items() if seen < at - CLOCK_KEPT_MS]
        if gone:
            self.r.hdel(keys.CLOCKS, *gone)

    def figures(self) -> Figures:
        """Every shared figure, in one round trip (ages by Redis's clock, read in it)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(keys.METRICS)
        pipe.hgetall(keys.CHUNK_SECONDS)
        pipe.llen(keys.QUEUE_IMPORTS)
        pipe.llen(keys.QUEUE_REPORTS)
        pipe.zcard(keys.PENDING)
        pipe.zrange(keys.PENDING, 0, 0, withscores=True)
        pipe.zcard(keys.TRIGGERS_ZSET)
        pipe.zcount(keys.TRIGGERS_ZSET, "-inf", clock.now_ms(self.r))
        pipe.zrange(keys.PRODUCING, 0, 0, withscores=True)
        pipe.xlen(keys.OUTBOX)
        pipe.xrange(keys.OUTBOX, count=1)
        pipe.xlen(keys.SINK_DEAD)
        pipe.hgetall(keys.CLOCKS)
        pipe.get(keys.EPOCH)
        sent = clock.add_time(pipe)
        (counters, chunk_seconds, q_imports, q_reports, pending, oldest, scheduled, due, producer, outbox,
         first, dead, skews, epoch, reply) = pipe.execute()
        now = clock.read_time(self.r, reply, sent)
        try:
            policy = str(self.r.info("memory").get("maxmemory_policy", "") or "")
        except redis.ResponseError:  # INFO refused (renamed by a provider)
            policy = ""
        return Figures(
            counters={k.decode(): int(v) for k, v in counters.items()},
            chunk_seconds={k.decode(): v.decode() for k, v in chunk_seconds.items()},
            queues={keys.QUEUE_IMPORTS: q_imports, keys.QUEUE_REPORTS: q_reports},
            pending=pending,
            oldest_pending_s=max(now - oldest[0][1] / 1000, 0.0) if oldest else 0.0,
            triggers_scheduled=scheduled,
            triggers_due=due,
            oldest_producer_s=max(now - producer[0][1] / 1000, 0.0) if producer else 0.0,
            outbox_entries=outbox,
            outbox_oldest_s=age_s(first[0][0], now) if first else 0.0,
            dead_letters=dead,
            clock_skews={name: skew for name, (skew, seen) in _skews(skews).items()
                         if seen >= now * 1000 - CLOCK_SHOWN_MS},
            maxmemory_policy=policy,
            redis_data_lost=epoch.losses if (epoch := Epoch.parse(epoch)) else 0,
        )


def _skews(stored: dict[bytes, bytes]) -> dict[str, tuple[float, int]]:
    """The clocks hash read: worker name -> (skew in seconds, when it said so in ms)."""
    out = {}
    for name, value in stored.items():
        skew, seen = value.split()
        out[name.decode()] = (float(skew), int(seen))
    return out
