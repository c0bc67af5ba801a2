"""Connecting to Redis, what counts as a passing failure of it, and the store's clock."""
from __future__ import annotations

import ssl
import time

import redis

from worker.errors import TransientError

#: Failures worth retrying with backoff: the store was unreachable, busy (loading its data), or full
#: (maxmemory with noeviction: it refuses writes until memory is given back or raised).
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError, TransientError)


def is_full(exc: BaseException) -> bool:
    """True for Redis refusing a write because its memory is full, however it said so: a plain
    ``OOM`` reply, or (Redis 6) an error inside a script or a MULTI that quotes it."""
    return isinstance(exc, redis.ResponseError) and "OOM command not allowed" in str(exc)


def is_transient(exc: BaseException) -> bool:
    """True for a failure worth retrying with backoff (see :data:`TRANSIENT`)."""
    return isinstance(exc, TRANSIENT) or is_full(exc)


class _FullAware:
    """Raises every "memory is full" refusal as OutOfMemoryError (a :data:`TRANSIENT` failure): Redis 6
    reports one inside a Lua script or a MULTI as a plain error, which would otherwise read as a bug."""

    def _full(self, exc: redis.ResponseError) -> Exception:
        return redis.exceptions.OutOfMemoryError(str(exc)) if is_full(exc) and not isinstance(
            exc, redis.exceptions.OutOfMemoryError) else exc


class Pipeline(_FullAware, redis.client.Pipeline):
    """A pipeline whose "memory is full" errors are OutOfMemoryError."""

    def execute(self, raise_on_error: bool = True):
        try:
            return super().execute(raise_on_error)
        except redis.ResponseError as exc:
            raise self._full(exc) from exc


class Client(_FullAware, redis.Redis):
    """redis-py's client, with "memory is full" errors always OutOfMemoryError (scripts and pipelines too)."""

    def execute_command(self, *args, **options):
        try:
            return super().execute_command(*args, **options)
        except redis.ResponseError as exc:
            raise self._full(exc) from exc

    def pipeline(self, transaction: bool = True, shard_hint=None) -> Pipeline:
        return Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def tls_options(url: str, ca_file: str = "", verify: bool = True) -> dict | None:
    """The TLS options of a ``rediss://`` URL (None for others): the server's certificate is checked
    by default, against ``ca_file`` (else the system's CAs); ``verify=False`` is an explicit opt-out."""
    if not url.startswith("rediss://"):
        return None
    options: dict = {"ssl_cert_reqs": ssl.CERT_REQUIRED if verify else ssl.CERT_NONE}
    if ca_file:
        options["ssl_ca_certs"] = ca_file
    return options


def connect(url: str, ca_file: str = "", verify: bool = True) -> redis.Redis:
    """A Redis client for ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
    tls = tls_options(url, ca_file, verify) or {}
    return Client.from_url(url, health_check_interval=30, **tls)


def now_ms() -> int:
    """Wall-clock time in ms, the unit of every stored time."""
    return int(time.time() * 1000)
