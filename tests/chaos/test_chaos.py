"""The reliability bar in a bounded form (``make chaos`` runs it in full).

Each test runs a cluster of its own: redis-server with AOF, real worker processes,
beat (for the sweeper). See harness.py for the oracle.
"""
from __future__ import annotations

import pytest

from . import clock, host_crash, hostile, redis_config, refused, scenarios, split_store, stored, tracking, undo_race


def _assert_exact(row: dict) -> None:
    assert (row["lost"], row["doubled"], row["unexpected"]) == (0, 0, 0), str(row)
    assert row["report_matches"], str(row)
    assert row["report_runs"] == 1 and row["finished_lines"] >= 1, str(row)
    assert row["ok"], str(row)  # (in full: a dict would be cut short)


def test_pool_children_killed_mid_chunk(tmp_path):
    row = scenarios.pool_child_kills(tmp_path, kills=5)
    assert row["broke"].startswith("5 kills") and not row["broke"].endswith(" 0 mid-chunk"), str(row)
    _assert_exact(row)


def test_worker_processes_killed_mid_chunk(tmp_path):
    row = scenarios.worker_kills(tmp_path, kills=3)
    assert row["broke"] == "3 kills"
    _assert_exact(row)


def test_every_chunk_published_twice(tmp_path):
    _assert_exact(scenarios.duplicate_publish(tmp_path, rows=4000))


def test_redis_killed_and_restarted_on_its_aof(tmp_path):
    row = scenarios.redis_kills(tmp_path, kills=2)
    assert row["broke"].startswith("2 kills"), str(row)
    _assert_exact(row)


def test_a_raising_chunk_becomes_errors_and_the_import_ends(tmp_path):
    row = scenarios.raising_chunk(tmp_path, rows=2000)
    assert row["chunk_errors"] and row["status"] == "partially_failed"
    _assert_exact(row)


def test_a_poison_chunk_is_set_aside_after_its_tries(tmp_path):
    row = scenarios.poison_chunk(tmp_path, rows=2000, tries=2)
    assert row["chunk_errors"] and row["status"] == "partially_failed"
    _assert_exact(row)


def test_sinks_killed_mid_batch_store_every_event_once(tmp_path):
    row = stored.sink_kills(tmp_path, kills=3, rows=12_000)
    assert row["broke"] == "3 kills" and row["people_equal"] and row["record"], str(row)
    _assert_exact(row)


def test_postgres_crashed_during_an_import_loses_nothing(tmp_path):
    row = stored.postgres_crashes(tmp_path, crashes=1, rows=12_000)
    assert row["broke"] == "1 crashes" and row["people_equal"] and row["record"], str(row)
    _assert_exact(row)


def test_redis_killed_under_a_sink_loses_nothing(tmp_path):
    row = stored.redis_kills_under_sink(tmp_path, kills=1, rows=12_000)
    assert row["people_equal"] and row["record"], str(row)
    _assert_exact(row)


def test_entries_a_database_refuses_are_set_aside_and_the_rest_stored(tmp_path):
    for row in refused.refused_entries(tmp_path, rows=12_000):
        assert "as expected" in row["report"] and "alert fires" in row["report"], str(row)
        _assert_exact(row)


def test_two_hosts_with_their_own_stores_split_nothing(tmp_path):
    row = split_store.split_store(tmp_path, rows=6_000)
    assert row["stored_claim_true"] and row["ok"], str(row)
    _assert_exact(row)


@pytest.mark.parametrize("case", hostile.CASES, ids=[name for _, name, _ in hostile.CASES])
def test_hostile_file_refused_quickly_in_bounded_memory(tmp_path, case):
    build, name, code = case
    path = tmp_path / name
    build(path, 0.25)
    from worker.store.embedded import start_private

    server, url = start_private(tmp_path / "redis")
    try:
        result = hostile.refuse(path, url, tmp_path)
    finally:
        server.kill()
        server.wait()
    assert result["code"] == code and result["exit"] == 1, result
    assert result["seconds"] < 5 and result["rss_mb"] < 256, result
    # one sentence for a person: what the file is, and where, when a line is to blame
    assert len(result["message"]) > 30, result
    if code in ("line_too_long", "binary_file", "unterminated_quote"):
        assert "line " in result["message"], result


def test_lost_messages_are_swept_and_sent_again(tmp_path):
    row = scenarios.lost_messages(tmp_path, rows=4000, every=5)
    assert row["broke"].startswith("4 of 20 tasks never sent"), str(row)
    _assert_exact(row)


def test_sigterm_finishes_the_chunk_in_hand(tmp_path):
    row = scenarios.sigterm_shutdowns(tmp_path, stops=1)
    assert row["broke"] == "1 stops: 1 exited 0, 1 finished their chunk", str(row)
    _assert_exact(row)


def test_a_full_redis_refuses_cleanly_and_the_import_completes_when_memory_is_back(tmp_path):
    row = scenarios.full_redis(tmp_path, rows=8000, seconds=4)
    assert row["ok"], str(row)  # (in full: a dict would be cut short)


def test_workers_with_wrong_clocks_decide_by_redis_clock(tmp_path):
    row = clock.clock_skew(tmp_path, rows=1000)
    assert "FAULT NOT MADE" not in row["report"], str(row)
    assert "sent now 1000/1000, future 0, outside the window 0" in row["report"], str(row)
    assert row["report"].count("1 warning(s), gauge shown") == 2, str(row)
    _assert_exact(row)


def test_a_killed_producer_ends_its_import_as_interrupted(tmp_path):
    row = scenarios.producer_killed(tmp_path, rows=20_000)
    assert row["ok"], str(row)  # (in full: a dict would be cut short)


def test_the_tracking_endpoint_loses_and_doubles_nothing_when_its_server_and_workers_are_killed(tmp_path):
    row = tracking.tracking_kills(tmp_path, messages=4000, kills=2)
    assert row["broke"].startswith("1 server kills, 1 pool child kills"), str(row)
    _assert_exact(row)


def test_tracking_order_holds_with_the_workers_paused_across_stream_ends(tmp_path):
    row = tracking.tracking_backlog_order(tmp_path, people=20, pauses=3)
    assert row["broke"].startswith("3 pauses"), str(row)
    _assert_exact(row)


def test_an_undo_racing_an_import_of_the_same_events_leaves_that_import_whole(tmp_path):
    row = undo_race.undo_race(tmp_path, rows=1000, new_rows=3000, after=2)
    assert row["broke"].startswith("undo X after") and "X's events left 0" in row["report"], str(row)
    _assert_exact(row)


def test_a_redis_that_evicts_is_refused_by_every_process_at_start_and_mid_import(tmp_path):
    row = redis_config.eviction_policy(tmp_path, rows=12_000)
    assert row["broke"].startswith("allkeys-lru at start, then mid-import (switched after"), str(row)
    assert row["report"].startswith("5/5 refused to start in one line; mid-import: writes stopped, interrupted"), str(row)
    assert row["ok"] and row["doubled"] == 0, str(row)


def test_a_redis_that_lost_its_data_is_said_in_one_line_and_the_sink_goes_on(tmp_path):
    row = redis_config.data_lost(tmp_path, rows=12_000)
    assert row["broke"].startswith("Redis restarted empty after") and "ALREADY" not in row["broke"], str(row)
    assert row["report"].startswith("--wait: one line"), str(row)
    assert row["ok"], str(row)  # (in full: a dict would be cut short)


@pytest.mark.parametrize("during", ["commits", "queueing"])
def test_a_host_crash_rolling_redis_back_stores_no_event_twice_and_every_import_ends(tmp_path, during):
    row = host_crash.host_crash(tmp_path, rows=12_000, during=during, copy_at=12, kill_after=8)
    assert not row["broke"].startswith("COULD NOT"), str(row)
    assert row["doubled"] == 0 and row["ok"], str(row)
