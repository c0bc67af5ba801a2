"""Connecting to Redis, what counts as a passing failure of it, and the store's clock."""
from __future__ import annotations

import time

import redis

from worker.errors import TransientError

#: Failures worth retrying with backoff: the store was unreachable, busy (loading its data), or full
#: (maxmemory with noeviction: it refuses writes until memory is given back or raised).
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError, TransientError)


def connect(url: str) -> redis.Redis:
    """A Redis client for ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
    return redis.Redis.from_url(url, health_check_interval=30)


def now_ms() -> int:
    """Wall-clock time in ms, the unit of every stored time."""
    return int(time.time() * 1000)
