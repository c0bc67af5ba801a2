"""The Celery application: Redis broker, orjson messages, at-least-once delivery.

Run a worker with ``backfill worker`` (or ``celery -A worker.app worker``).
"""
from __future__ import annotations

import logging
import os
import threading
import time

import orjson
from celery import Celery, Task, bootsteps, signals
from kombu import Queue
from kombu.serialization import register

from worker import keys
from worker.errors import ConfigError
from worker.logs import configure as configure_logs
from worker.logs import get_logger
from worker.settings import Settings, get_settings
from worker.store.client import tls_options
from worker.store.embedded import broker_url, ensure_redis


def _dumps(obj: object) -> str:
    return orjson.dumps(obj).decode()


register("orjson", _dumps, orjson.loads, content_type="application/x-orjson", content_encoding="utf-8")


class WorkerLimitsTask(Task):
    """Messages carry no time limits, so the worker's own settings decide.

    Celery writes the sending process's task time limits into every message, and a worker obeys
    the message: a producer with default settings would override the limits the workers run with.
    """

    def apply_async(self, args=None, kwargs=None, task_id=None, producer=None, link=None, link_error=None,
                    shadow=None, **options):
        options.setdefault("time_limit", None)
        options.setdefault("soft_time_limit", None)
        return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)


def celery_config(settings: Settings, url: str) -> dict:
    """The Celery configuration of backfill's workers and of the processes that send them tasks, on the
    Redis ``url`` (resolved: :func:`worker.store.embedded.ensure_redis`)."""
    return dict(
        broker_url=broker_url(url),
        # rediss://: kombu checks the certificate only when told to (redis-py does by default).
        broker_use_ssl=tls_options(url, settings.redis_ca_file, settings.redis_tls_verify),
        broker_connection_retry_on_startup=True,
        # A Redis refusing writes for a while (MISCONF: it cannot save; OOM: it is full) answers the consumer's
        # own commands (BRPOP under MISCONF, its acks and requeues) with errors kombu calls channel errors,
        # which would end the worker: reconnect with backoff instead, as for a lost connection.
        broker_channel_error_retry=True,
        # A task not acked within this is delivered again: keep it well above the chunk time limit.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        task_serializer="orjson",
        accept_content=["orjson"],
        result_serializer="orjson",
        task_ignore_result=True,
        result_backend=None,
        # At least once: ack after the task ran, and redeliver if its process died.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.chunk_soft_time_limit_s,
        task_time_limit=settings.chunk_time_limit_s,
        task_default_queue=keys.QUEUE_IMPORTS,
        task_queues=(Queue(keys.QUEUE_IMPORTS), Queue(keys.QUEUE_REPORTS)),
        task_routes={
            "backfill.finalize_import": {"queue": keys.QUEUE_REPORTS},
            "backfill.move_due_triggers": {"queue": keys.QUEUE_REPORTS},
            "backfill.prune_dedupe": {"queue": keys.QUEUE_REPORTS},
            "backfill.sweep": {"queue": keys.QUEUE_REPORTS},
            "backfill.notify": {"queue": keys.QUEUE_REPORTS},
        },
        # Each tick expires when the next is due: with no worker up for a day, thousands of stale ticks
        # would otherwise wait in the queue and all run on recovery.
        beat_schedule={
            "move-due-triggers": {"task": "backfill.move_due_triggers", "schedule": settings.trigger_tick_s,
                                  "options": {"expires": settings.trigger_tick_s}},
            "prune-dedupe-marks": {"task": "backfill.prune_dedupe", "schedule": settings.dedupe_prune_s,
                                   "options": {"expires": settings.dedupe_prune_s}},
            "sweep-pending-work": {"task": "backfill.sweep", "schedule": settings.sweep_every_s,
                                   "options": {"expires": settings.sweep_every_s}},
        },
        # SIGTERM is Celery's warm shutdown: take no new task, finish the chunk in hand (bounded by
        # the chunk time limit). A cold shutdown (SIGQUIT, a second SIGTERM) still gives that chunk
        # this long, then returns it to the queue (acks_late) for another worker.
        worker_soft_shutdown_timeout=settings.soft_shutdown_s,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        timezone="UTC",
        enable_utc=True,
        include=["worker.tasks"],
        # (not Celery's: the Redis the store connects to, in redis-py's spelling)
        backfill_redis_url=url,
    )


#: The app every task is declared on. Configured when first used, not when imported: by the entry point
#: that sends tasks (:func:`configure`, called by :meth:`worker.context.Context.open`), or, in a
#: Celery worker (``celery -A worker.app``, which reads only the environment), from the environment.
def app_for(settings: Settings, url: str) -> Celery:
    """A Celery app of its own on the Redis ``url``, to watch or ping the workers there: for a tool that
    goes from one Redis to another in one process (the benchmark suite), since the tasks' app is
    configured once a process. Tasks are sent with the tasks' app, in a process of its own."""
    other = Celery("backfill", task_cls=WorkerLimitsTask)
    other.config_from_object(celery_config(settings, url))
    return other


class BoundedShutdown(bootsteps.StartStopStep):
    """A worker's shutdown that outlasts what it may take ends the process.

    A warm shutdown waits for the chunk in hand, which the chunk time limit bounds, and a cold one
    gives it the soft shutdown timeout. Past both (and a margin), the pool's join is stuck: billiard
    can block for good reading a pool child's result pipe after the consumer gave up (seen when a full
    Redis refused the consumer five times in a second: RestartFreqExceeded), and a process that
    neither works nor exits is one no supervisor restarts. So the process exits; its unacknowledged
    chunks are delivered again (acks_late), as after any worker death."""

    requires = {"celery.worker.components:Pool"}  # (started after the pool, so stopped before it)

    def stop(self, parent: object) -> None:
        bound = float(app.conf.task_time_limit or 0) + float(app.conf.worker_soft_shutdown_timeout or 0) + 10
        threading.Thread(target=_exit_after, args=(bound,), name="backfill-shutdown-bound", daemon=True).start()

    def terminate(self, parent: object) -> None:
        self.stop(parent)


def _exit_after(seconds: float) -> None:
    time.sleep(seconds)
    get_logger("backfill.worker").error("the worker's shutdown outlasted its bound: exiting; its chunks in "
                                        "hand are delivered again", seconds=round(seconds))
    logging.shutdown()
    os._exit(70)  # EX_SOFTWARE: the supervisor starts it again


class _Backfill(Celery):
    def on_configure(self) -> None:  # (Celery's method hook: it lets errors out)
        # The app's first use in a process that configured nothing (a Celery worker, beat, Flower): the
        # environment's settings, as the worker's entry point. ConfigError without a Redis to use: the
        # Signal form of this hook would log that and go on with Celery's defaults (amqp://localhost).
        if not _configured:
            settings = get_settings()
            configure(settings, ensure_redis(settings))


app = _Backfill("backfill", task_cls=WorkerLimitsTask)
app.steps["worker"].add(BoundedShutdown)
_configured = False


def configure(settings: Settings, url: str) -> None:
    """Point the app at the Redis ``url`` with ``settings``, once a process: its connections are made for
    that Redis, so a second context on another Redis is refused (ConfigError), never sent to the first."""
    global _configured
    if _configured:
        if app.conf.backfill_redis_url != url:
            raise ConfigError(f"this process already sends its tasks to {app.conf.backfill_redis_url}; "
                              f"a second Redis ({url}) needs a process of its own")
        return
    _configured = True
    app.config_from_object(celery_config(settings, url), force=app.configured)


@signals.setup_logging.connect
def _logging(**_: object) -> None:
    # Connecting this signal stops Celery from installing its own handlers.
    configure_logs(get_settings())
