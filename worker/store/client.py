"""Connecting to Redis, and what counts as a transient failure of it."""
from __future__ import annotations

import ssl
from typing import Any

import redis

from worker.errors import TransientError


class WritesRefused(redis.ResponseError):  # type: ignore[misc]  # (redis-py is typed Any here: pyproject.toml)
    """Redis refuses writes because it cannot save to its disk (``MISCONF``: a full or read-only disk under
    an RDB snapshot with ``stop-writes-on-bgsave-error yes``) until a snapshot succeeds again."""


#: Failures worth retrying with backoff: the store was unreachable, busy (loading its data), full
#: (maxmemory with noeviction: it refuses writes until memory is given back or raised), or unable to save
#: (MISCONF: it refuses writes until its disk takes a snapshot again).
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError, WritesRefused,
             TransientError)


def is_full(exc: BaseException) -> bool:
    """True for Redis refusing a write because its memory is full, however it said so: a plain
    ``OOM`` reply, or (Redis 6) an error inside a script or a MULTI that quotes it."""
    return isinstance(exc, redis.ResponseError) and "OOM command not allowed" in str(exc)


def is_unsaved(exc: BaseException) -> bool:
    """True for Redis refusing a write because it cannot save to its disk (``MISCONF``), however it said
    so: a plain reply, or an error inside a script or a MULTI that quotes it."""
    return isinstance(exc, redis.ResponseError) and "MISCONF " in str(exc)


def is_transient(exc: BaseException) -> bool:
    """True for a failure worth retrying with backoff (see :data:`TRANSIENT`)."""
    return isinstance(exc, TRANSIENT) or is_full(exc) or is_unsaved(exc)


class _RefusalAware:
    """Raises every write Redis refuses for a transient reason as a :data:`TRANSIENT` failure: "memory is
    full" as OutOfMemoryError, "cannot save" (MISCONF) as :class:`WritesRefused`. redis-py names neither
    when a Lua script or a MULTI reports it (nor MISCONF at all), which would otherwise read as a bug."""

    def _refused(self, exc: Exception) -> Exception:
        if isinstance(exc, TRANSIENT):
            return exc
        if is_full(exc):
            full: Exception = redis.exceptions.OutOfMemoryError(str(exc))
            return full
        return WritesRefused(str(exc)) if is_unsaved(exc) else exc


class Pipeline(_RefusalAware, redis.client.Pipeline):  # type: ignore[misc]  # (redis-py is typed Any here: pyproject.toml)
    """A pipeline whose transient refusals are :data:`TRANSIENT` errors."""

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            replies: list[Any] = super().execute(raise_on_error)
        except redis.ResponseError as exc:
            raise self._refused(exc) from exc
        return replies


class Client(_RefusalAware, redis.Redis):  # type: ignore[misc]  # (redis-py is typed Any here: pyproject.toml)
    """redis-py's client, with transient refusals always :data:`TRANSIENT` errors (scripts and pipelines too)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)
        except redis.ResponseError as exc:
            raise self._refused(exc) from exc

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def tls_options(url: str, ca_file: str = "", verify: bool = True) -> dict[str, Any] | None:
    """The TLS options of a ``rediss://`` URL (None for others): the server's certificate is checked
    by default, against ``ca_file`` (else the system's CAs); ``verify=False`` is an explicit opt-out."""
    if not url.startswith("rediss://"):
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED if verify else ssl.CERT_NONE}
    if ca_file:
        options["ssl_ca_certs"] = ca_file
    return options


def connect(url: str, ca_file: str = "", verify: bool = True) -> redis.Redis:
    """A Redis client for ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
    tls = tls_options(url, ca_file, verify) or {}
    return Client.from_url(url, health_check_interval=30, **tls)

