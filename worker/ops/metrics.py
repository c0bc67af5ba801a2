"""The Prometheus endpoint: the import-level figures Flower does not have.

Every figure is read from Redis when Prometheus scrapes, so it is right however many
worker processes (prefork children, machines) produced it: rows by outcome and
finished imports are counted by the commit and report scripts themselves, in the
same atomic step as what they count; chunk times go to a histogram hash that every
worker process adds to. Run it with ``backfill metrics`` (one per deployment).

Metrics (all ``backfill_``): ``rows_total{outcome}``, ``imports_total{status}``,
``imports_running``, ``chunk_duration_seconds`` (histogram), ``queue_length{queue}``,
``pending_chunks``, ``oldest_pending_seconds``, ``oldest_producer_silence_seconds``, ``triggers_scheduled``, ``triggers_due``,
``sink_lag_entries``, ``sink_lag_seconds``, ``rows_stored_total{table}``, ``sink_dead_letters_total``,
``sink_dead_letters_held``, ``worker_clock_skew_seconds{worker}``, ``redis_noeviction{policy}``,
``redis_data_lost_total``, ``sink_late_duplicates_total``. At each scrape the endpoint's own guard checks
Redis too (:mod:`worker.store.guard`), so a loss of Redis's data is found and counted even while no other
process runs.
"""
from __future__ import annotations

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

from worker.errors import RedisMisconfigured
from worker.ops.report import STATUSES
from worker.redis_health import NOEVICTION
from worker.store import TRANSIENT
from worker.store.guard import Guard
from worker.store.metrics import CHUNK_BUCKETS, Metrics


class RedisCollector:
    """A prometheus_client collector reading backfill's shared figures from Redis at each scrape;
    ``guard``: this process's (checked at each scrape: it finds and counts a loss of Redis's data)."""

    def __init__(self, client: redis.Redis, guard: Guard | None = None) -> None:
        self.metrics = Metrics(client)
        self.guard = guard

    def collect(self) -> Iterator[Metric]:
        try:
            if self.guard is not None:
                try:
                    self.guard.check(force=True)
                except RedisMisconfigured:  # (served below as backfill_redis_noeviction 0)
                    pass
            figures = self.metrics.figures()
        except TRANSIENT:  # Redis is away: say so, and only that (the endpoint itself keeps answering)
            yield GaugeMetricFamily("backfill_up", "1 when Redis answered this scrape", value=0)
            return
        yield GaugeMetricFamily("backfill_up", "1 when Redis answered this scrape", value=1)
        counters = figures.counters
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
        yield _histogram(figures.chunk_seconds)
        queues = GaugeMetricFamily("backfill_queue_length", "Messages waiting in a Celery queue", labels=["queue"])
        for queue, length in figures.queues.items():
            queues.add_metric([queue], length)
        yield queues
        yield GaugeMetricFamily("backfill_pending_chunks", "Chunks (and reports) stored and not yet done",
                                value=figures.pending)
        yield GaugeMetricFamily("backfill_oldest_pending_seconds",
                                "Age of the pending work with the oldest sign of life", value=figures.oldest_pending_s)
        yield GaugeMetricFamily("backfill_oldest_producer_silence_seconds",
                                "How long the most silent producer still queueing has said nothing",
                                value=figures.oldest_producer_s)
        yield GaugeMetricFamily("backfill_triggers_scheduled", "Campaign triggers scheduled",
                                value=figures.triggers_scheduled)
        yield GaugeMetricFamily("backfill_triggers_due", "Scheduled triggers already due (not yet moved)",
                                value=figures.triggers_due)
        yield GaugeMetricFamily("backfill_sink_lag_entries", "Outbox entries no sink has stored yet",
                                value=figures.outbox_entries)
        yield GaugeMetricFamily("backfill_sink_lag_seconds", "Age of the oldest outbox entry not stored yet",
                                value=figures.outbox_oldest_s)
        stored = CounterMetricFamily("backfill_rows_stored", "Rows the sinks wrote to the results database, by table",
                                     labels=["table"])
        for table in ("events", "people", "deliveries"):
            stored.add_metric([table], counters.get(f"stored_{table}", 0))
        yield stored
        yield CounterMetricFamily("backfill_sink_dead_letters", "Outbox entries the results database refused, "
                                  "set aside as dead letters", value=counters.get("sink_dead_letters", 0))
        yield CounterMetricFamily("backfill_sink_late_duplicates", "Events the results database did not store "
                                  "because another event already held their dedupe key (Redis had forgotten its "
                                  "mark: a host crash rolled it back)", value=counters.get("stored_late_duplicates", 0))
        yield GaugeMetricFamily("backfill_sink_dead_letters_held", "Dead letters not yet stored again "
                                "(backfill sink --retry-dead)", value=figures.dead_letters)
        skews = GaugeMetricFamily("backfill_worker_clock_skew_seconds", "How far a worker's clock is ahead of "
                                  "Redis's (negative: behind); backfill decides by Redis's", labels=["worker"])
        for worker, skew in sorted(figures.clock_skews.items()):
            skews.add_metric([worker], skew)
        yield skews
        policy = figures.maxmemory_policy
        noeviction = GaugeMetricFamily("backfill_redis_noeviction", "1 when Redis evicts nothing (maxmemory-policy "
                                       "noeviction, or INFO does not say); 0: every process refuses to work",
                                       labels=["policy"])
        noeviction.add_metric([policy or "unknown"], 1 if policy in ("", NOEVICTION) else 0)
        yield noeviction
        yield CounterMetricFamily("backfill_redis_data_lost", "Losses of Redis's data found by backfill (restarted "
                                  "without persistence, or flushed); counted in Redis, so it starts again from 0 "
                                  "after each loss", value=figures.redis_data_lost)


def _histogram(fields: dict[str, str]) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound in CHUNK_BUCKETS:
        cumulative += int(fields.get(repr(bound), 0))
        buckets.append((repr(bound), cumulative))
    buckets.append(("+Inf", cumulative + int(fields.get("+Inf", 0))))
    return HistogramMetricFamily("backfill_chunk_duration_seconds", "Time to process one chunk, all workers",
                                 buckets=buckets, sum_value=float(fields.get("sum", 0)))


def serve(client: redis.Redis, port: int, addr: str = "0.0.0.0", *, check_every_s: float = 10.0) -> WSGIServer:
    """Serve /metrics on ``addr:port`` in a background thread; returns the server (``shutdown()`` stops it).
    ``check_every_s``: how often Redis's memory policy is checked (BACKFILL_REDIS_CHECK_S)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RedisCollector(client, Guard(client, check_every_s)))
    server, _ = start_http_server(port, addr=addr, registry=registry)
    return server
