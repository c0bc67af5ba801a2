"""What an entry point builds once and passes down: the settings in force, the Redis they name, the store.

Every process of backfill starts at one entry point: the ``backfill`` command (one per invocation),
``backfill serve`` (one per service), a script calling :mod:`producers.api` (one per process, or one it
builds itself), a Celery worker process (one per pool process, :func:`worker.tasks.context`). That
entry point reads its settings, resolves the Redis they name (starting the embedded server when they
allow it), and builds one :class:`Context`; everything below takes the context, or the store and the
settings from it, as arguments. Nothing is connected or started when a module is imported.
"""
from __future__ import annotations

import dataclasses

from worker.app import configure
from worker.settings import Settings
from worker.store import Store, connect
from worker.store.embedded import ensure_redis


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """The settings of a process and the store on the Redis they name (one connection pool)."""

    settings: Settings
    store: Store
    #: the Redis the store and the Celery app use (the embedded server's socket when it was started)
    redis_url: str

    @classmethod
    def open(cls, settings: Settings) -> Context:
        """Resolve the Redis ``settings`` name (starting the embedded server when they allow it: ConfigError
        when there is none), point the Celery app at it for the tasks this process sends, and connect.
        Nothing is sent to Redis yet: a Redis that does not answer fails the first command, not this."""
        url = ensure_redis(settings)
        configure(settings, url)  # (the Celery app is configured here, not when imported)
        return cls.on(settings, url)

    @classmethod
    def on(cls, settings: Settings, url: str) -> Context:
        """A context on an already resolved Redis ``url`` (a worker process: Celery configured the app)."""
        client = connect(url, settings.redis_ca_file, settings.redis_tls_verify)
        return cls(settings, Store(client, check_every_s=settings.redis_check_s), url)
