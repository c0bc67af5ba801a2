"""One clock: a chunk decides by Redis's clock, so a worker whose own clock is wrong decides as the others.

The worker's host clock is shifted in this process (``time.time``, the clock backfill's code reads),
as a host 31 days fast or 10 minutes slow would have it; Redis's clock is the true one.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from producers.source import Source
from producers.split import chunks, scan
from worker import keys
from worker.events.dialects import plan_columns
from worker.events.rules import Campaign
from worker.settings import get_settings
from worker.spec import ImportSpec, new_import_id

from .helpers import write

DAY = 86_400


@pytest.fixture
def shift(monkeypatch):
    """Shift this process's wall clock (what ``time.time`` says) by so many seconds."""
    real = time.time

    def to(offset_s: float) -> None:
        monkeypatch.setattr(time, "time", lambda: real() + offset_s)

    return to


def _redis_now(store) -> float:
    seconds, micros = store.r.time()
    return seconds + micros / 1e6


def _stage(store, tmp_path, name: str, ids: list[str], at: float, *, trigger: bool) -> ImportSpec:
    """An events import of one chunk (one row per event id, all at ``at``), stored but not queued."""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = ["email,event_name,time,event_id"] + [f"{i}@example.com,Completes checkout,{stamp},{i}" for i in ids]
    path = write(tmp_path, name, "\n".join(lines) + "\n")
    source = Source.open(path)
    plan = scan(source)
    spec = ImportSpec(import_id=new_import_id(), columns=plan.columns, identifier=plan.identifier, source=str(path),
                      create_people=True, trigger=trigger)
    store.imports.create(spec, {"rows_expected": plan.rows}, 3600)
    for chunk in chunks(source, plan, 1000):
        store.work.put_chunk(spec.import_id, chunk.number, chunk.rows, chunk.row_numbers, 3600)
    return spec


@pytest.mark.parametrize("offset_s", [31 * DAY, -600], ids=["31-days-fast", "10-minutes-slow"])
def test_a_worker_with_a_wrong_clock_decides_by_redis_clock(store, tmp_path, shift, offset_s):
    from worker.events.pipeline import run_chunk

    settings = get_settings()
    store.triggers.add_campaign(Campaign("thanks", "Completes checkout", 0))
    two_minutes_ago = _redis_now(store) - 120
    earlier = _stage(store, tmp_path, "earlier.csv", [f"a{n}" for n in range(40)], two_minutes_ago, trigger=False)
    assert run_chunk(store, earlier.import_id, 0, settings).imported == 40  # (an honest worker)

    shift(offset_s)
    again = _stage(store, tmp_path, "again.csv", [f"a{n}" for n in range(40)] + [f"b{n}" for n in range(25)],
                   two_minutes_ago, trigger=True)
    result = run_chunk(store, again.import_id, 0, settings)
    state = store.imports.state(again.import_id)
    # the earlier import's events are still within the 30-day dedupe window; the new ones 2 minutes old
    assert (result.imported, result.duplicates) == (25, 40)
    assert state.get("trig_future") is None and state.get("trig_outside_window") is None
    assert state["trig_sent_now"] == "25"
    assert list(store.imports.problems(again.import_id, "warnings")) == []
    assert len(store.triggers.deliveries()) == 25
    # and the worker knows how far off its own clock is
    from worker.store import clock

    assert clock.skew_s(store.r) == pytest.approx(offset_s, abs=5)


def test_stored_times_are_redis_clock_on_a_shifted_host(store, shift):
    """Signs of life (the sweeper's), record times: Redis's clock, whatever this host's says."""
    redis_now_ms = _redis_now(store) * 1000
    shift(31 * DAY)
    store.imports.create(ImportSpec(import_id="shifted", columns=plan_columns(["email", "event_name"]),
                                    identifier="email"), {}, 3600)
    store.work.put_chunk("shifted", 0, [["a@b.co", "x"]], [2], 3600)
    score = store.r.zscore(keys.PENDING, keys.pending_member("shifted", 0))
    assert abs(score - redis_now_ms) < 5_000
    from worker.store import clock

    assert abs(clock.now_ms(store.r) - _redis_now(store) * 1000) < 5_000


def test_the_sweeper_judges_quiet_work_by_redis_clock(store, shift):
    """A sweeper on a host 10 minutes slow does not leave quiet work alone; on one 31 days fast, it does
    not send again work that just showed life."""
    from worker.ops import sweeper

    store.imports.create(ImportSpec(import_id="quiet", columns=plan_columns(["email", "event_name"]),
                                    identifier="email"), {}, 3600)
    store.work.put_chunk("quiet", 0, [["a@b.co", "x"]], [2], 3600)

    def sent(after_s: float) -> list:
        out: list = []
        sweeper.sweep(store, after_s, send_chunk=lambda i, c: out.append((i, c)), send_report=out.append,
                      fail_chunk=lambda i, c: None, send_notify=out.append, producer_timeout_s=3600)
        return out

    shift(31 * DAY)
    assert sent(after_s=60) == []  # it showed life a moment ago
    time.sleep(1.1)
    shift(-600)
    assert sent(after_s=1) == [("quiet", 0)]


def test_a_skewed_worker_warns_once_in_a_while_and_shows_in_the_gauge(store, shift, monkeypatch):
    import structlog

    from worker.ops import skew
    from worker.ops.metrics import RedisCollector
    from worker.store import clock

    monkeypatch.setattr(skew, "_said", skew._Said())
    shift(-600)
    clock.now(store.r)  # (a chunk's read measures it)
    with structlog.testing.capture_logs() as logged:
        for _ in range(5):  # five chunks in a row: one report, one warning
            assert skew.check(store, "slow@host", 300) == pytest.approx(-600, abs=5)
    warnings = [e for e in logged if e["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["clock_ahead_s"] == pytest.approx(-600, abs=5), logged
    gauge = {s.labels["worker"]: s.value for family in RedisCollector(store.r).collect() for s in family.samples
             if s.name == "backfill_worker_clock_skew_seconds"}
    assert gauge == {"slow@host": pytest.approx(-600, abs=5)}
    # a worker within the allowance reports its skew, and says nothing
    monkeypatch.setattr(skew, "_said", skew._Said())
    shift(2)
    clock.now(store.r)
    with structlog.testing.capture_logs() as logged:
        skew.check(store, "fine@host", 300)
    assert logged == []
    assert store.r.hexists(keys.CLOCKS, "fine@host")
