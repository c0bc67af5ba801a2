"""Scaling out: three worker processes with their own node names, one Redis, one 200,000-row import.

Runs on a cluster of its own (tests/chaos/harness.py: redis-server with AOF, real prefork
workers, beat) and compares the import with the oracle. The metrics endpoint's figures,
written by six pool processes in three workers, must add up to the same totals.
"""
from __future__ import annotations

import collections
import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.chaos.harness import Cluster, events_file, oracle
from worker.ops.metrics import RedisCollector


def test_three_workers_one_import_exact_totals(tmp_path):
    with Cluster(tmp_path, settings={"BACKFILL_CHUNK_ROWS": "2000"}).start(3) as cluster:
        path = events_file(tmp_path, 200_000, seed=21)
        expected = oracle(path, cluster.chunk_rows)
        import_id = cluster.enqueue(path)
        report = cluster.wait_report(import_id, timeout=300)
        result = cluster.check(import_id, report, expected)
        registry = CollectorRegistry()
        registry.register(RedisCollector(cluster.client()))
        scraped = {(s.name, tuple(s.labels.values())): s.value
                   for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}
        nodes = collections.Counter()
        for log in tmp_path.glob("worker*.log"):
            nodes[log.name] = len(re.findall(r'"event":"chunk done"', log.read_text()))
    assert (result["lost"], result["doubled"], result["unexpected"]) == (0, 0, 0) and result["report_matches"]
    assert report["rows"] == 200_000 == expected.rows and report["chunks"] == 100
    assert len(nodes) == 3 and all(n > 0 for n in nodes.values()), nodes  # every worker took chunks
    assert sum(nodes.values()) >= 100
    assert scraped[("backfill_rows_total", ("imported",))] == report["imported"]
    assert scraped[("backfill_rows_total", ("duplicate",))] == report["duplicates"]
    assert scraped[("backfill_rows_total", ("error",))] == report["errors"]
    assert scraped[("backfill_chunk_duration_seconds_count", ())] == 100
