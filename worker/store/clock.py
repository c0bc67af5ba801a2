"""The store's clock: every time backfill decides by, or stores, is Redis's (``TIME``), not its host's.

Workers on several machines decide with "now": the dedupe window (its hour buckets), the
trigger rules (future, window, delay), the people rules, which pending work went quiet,
which triggers are due. Each host's own clock can be wrong by minutes or days; Redis's is
one clock they all share. So "now" is read from Redis:

- exactly, once a chunk, in the round trip that loads the chunk's rows (:func:`add_time`,
  :func:`read_time`): a chunk costs no extra round trip and its whole decision uses one now;
- exactly, in one ``TIME`` round trip, where a beat task or a failure path needs it (:func:`now`);
- approximately (within the round trip of the last reading), for the signs of life and the
  record times written between readings (:func:`now_ms`): Redis's clock at the last reading plus
  the time elapsed since on this host's monotonic clock (which a wrong or stepped wall clock does
  not move), read again when that reading is over :data:`REFRESH_S` old.

Each reading also measures how far this host's clock is off (:func:`skew_s`), for the
warning and the metric of :mod:`worker.ops.skew`. One clock per client (per connection pool).
"""
from __future__ import annotations

import dataclasses
import threading
import time
import weakref
from typing import Any

import redis

#: Redis's clock is read again once the last reading is this old (one TIME a minute at most).
REFRESH_S = 60.0


@dataclasses.dataclass(slots=True)
class _Reading:
    #: Redis's clock at the reading (Unix seconds)
    server_s: float
    #: this host's monotonic clock at the reading
    at: float
    #: this host's wall clock minus Redis's, in seconds (positive: this host is fast)
    skew_s: float


_readings: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def add_time(pipe: redis.client.Pipeline) -> float:
    """Queue a ``TIME`` on ``pipe`` (its reply goes to :func:`read_time`); returns this host's clock now."""
    pipe.time()
    return time.time()


def read_time(client: redis.Redis, reply: tuple[int, int], sent: float) -> float:
    """Redis's clock (Unix seconds) from a ``TIME`` reply; notes this host's offset from it, measured
    against the middle of the round trip that began at ``sent`` (this host's clock)."""
    seconds, micros = reply
    server = int(seconds) + int(micros) / 1_000_000
    local = (sent + time.time()) / 2
    with _lock:
        _readings[client] = _Reading(server, time.monotonic(), local - server)
    return server


def now(client: redis.Redis) -> float:
    """Redis's clock now (Unix seconds), in one ``TIME`` round trip."""
    sent = time.time()
    return read_time(client, client.time(), sent)


def now_ms(client: redis.Redis) -> int:
    """Redis's clock in ms (the unit of every stored time): the last reading moved on by this host's
    monotonic clock; a ``TIME`` round trip only when there was none in the last :data:`REFRESH_S`."""
    reading = _readings.get(client)
    if reading is not None and (elapsed := time.monotonic() - reading.at) <= REFRESH_S:
        return int((reading.server_s + elapsed) * 1000)
    return int(now(client) * 1000)


def skew_s(client: redis.Redis) -> float | None:
    """How far this host's clock is ahead of Redis's (seconds; negative: behind), as last measured; None
    before the first reading."""
    reading = _readings.get(client)
    return None if reading is None else reading.skew_s
