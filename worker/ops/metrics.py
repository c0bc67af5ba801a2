"""The Prometheus endpoint: the import-level figures Flower does not have.

Every figure is read from Redis when Prometheus scrapes, so it is right however many
worker processes (prefork children, machines) produced it: rows by outcome and
finished imports are counted by the commit and report scripts themselves, in the
same atomic step as what they count; chunk times go to a histogram hash that every
worker process adds to. Run it with ``backfill metrics`` (one per deployment).

Metrics (all ``backfill_``): ``rows_total{outcome}``, ``imports_total{status}``,
``imports_running``, ``chunk_duration_seconds`` (histogram), ``queue_length{queue}``,
``pending_chunks``, ``oldest_pending_seconds``, ``triggers_scheduled``, ``triggers_due``.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from worker import keys
from worker.store import CHUNK_BUCKETS

#: Final statuses an import can end in (worker/report.py).
STATUSES = ("completed", "completed_with_errors", "partially_failed", "failed")


class RedisCollector:
    """A prometheus_client collector reading backfill's shared figures from Redis at each scrape."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def collect(self) -> Iterator[Metric]:
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(keys.METRICS)
        pipe.hgetall(keys.CHUNK_SECONDS)
        pipe.llen(keys.QUEUE_IMPORTS)
        pipe.llen(keys.QUEUE_REPORTS)
        pipe.zcard(keys.PENDING)
        pipe.zrange(keys.PENDING, 0, 0, withscores=True)
        pipe.zcard(keys.TRIGGERS_ZSET)
        now = time.time()
        pipe.zcount(keys.TRIGGERS_ZSET, "-inf", int(now * 1000))
        counters, chunk_seconds, q_imports, q_reports, pending, oldest, scheduled, due = pipe.execute()
        counters = {k.decode(): int(v) for k, v in counters.items()}

        rows = CounterMetricFamily("backfill_rows", "Rows of real imports by outcome", labels=["outcome"])
        for outcome in ("imported", "duplicate", "error"):
            rows.add_metric([outcome], counters.get(f"rows_{outcome}", 0))
        yield rows
        finished = CounterMetricFamily("backfill_imports", "Imports finished, by final status", labels=["status"])
        for status in STATUSES:
            finished.add_metric([status], counters.get(f"imports_{status}", 0))
        yield finished
        done = sum(counters.get(f"imports_{s}", 0) for s in STATUSES)
        yield GaugeMetricFamily("backfill_imports_running", "Imports queued or running (created, not finished)",
                                value=max(counters.get("imports_created", 0) - done, 0))
        yield _histogram({k.decode(): v.decode() for k, v in chunk_seconds.items()})
        queues = GaugeMetricFamily("backfill_queue_length", "Messages waiting in a Celery queue", labels=["queue"])
        queues.add_metric([keys.QUEUE_IMPORTS], q_imports)
        queues.add_metric([keys.QUEUE_REPORTS], q_reports)
        yield queues
        yield GaugeMetricFamily("backfill_pending_chunks", "Chunks (and reports) stored and not yet done",
                                value=pending)
        age = now - oldest[0][1] / 1000 if oldest else 0.0
        yield GaugeMetricFamily("backfill_oldest_pending_seconds",
                                "Age of the pending work with the oldest sign of life", value=max(age, 0.0))
        yield GaugeMetricFamily("backfill_triggers_scheduled", "Campaign triggers scheduled", value=scheduled)
        yield GaugeMetricFamily("backfill_triggers_due", "Scheduled triggers already due (not yet moved)",
                                value=due)


def _histogram(fields: dict[str, str]) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound in CHUNK_BUCKETS:
        cumulative += int(fields.get(repr(bound), 0))
        buckets.append((repr(bound), cumulative))
    buckets.append(("+Inf", cumulative + int(fields.get("+Inf", 0))))
    return HistogramMetricFamily("backfill_chunk_duration_seconds", "Time to process one chunk, all workers",
                                 buckets=buckets, sum_value=float(fields.get("sum", 0)))


def serve(client: redis.Redis, port: int, addr: str = "0.0.0.0") -> WSGIServer:
    """Serve /metrics on ``addr:port`` in a background thread; returns the server (``shutdown()`` stops it)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RedisCollector(client))
    server, _ = start_http_server(port, addr=addr, registry=registry)
    return server
