"""The sweeper against a real Redis: what it sends again, what it leaves, what it forgets."""
from __future__ import annotations

import time

import orjson

from worker import keys
from worker.events.dialects import plan_columns
from worker.ops import sweeper
from worker.spec import ImportSpec


def _import(store, import_id: str, chunks: int) -> ImportSpec:
    spec = ImportSpec(import_id=import_id, columns=plan_columns(["email", "event_name"]), identifier="email",
                      create_people=True)
    store.imports.create(spec, {}, 3600)
    for n in range(chunks):
        store.work.put_chunk(import_id, n, [["a@b.co", "x"]], [n + 2], 3600)
    return spec


def _sweep(store, after_s: float = 0.0):
    sent: dict[str, list] = {"chunks": [], "reports": [], "failed": [], "notify": []}
    swept = sweeper.sweep(store, after_s, send_chunk=lambda i, c: sent["chunks"].append((i, c)),
                          send_report=lambda i: sent["reports"].append(i),
                          fail_chunk=lambda i, c: sent["failed"].append((i, c)),
                          send_notify=lambda i: sent["notify"].append(i), producer_timeout_s=3600)
    return swept, sent


def test_quiet_chunks_are_sent_again_and_recent_ones_left(store):
    _import(store, "imp1", 3)
    swept, sent = _sweep(store, after_s=3600)  # nothing is an hour old
    assert sent == {"chunks": [], "reports": [], "failed": [], "notify": []} and swept.chunks == 0
    swept, sent = _sweep(store)
    assert sorted(sent["chunks"]) == [("imp1", 0), ("imp1", 1), ("imp1", 2)] and swept.chunks == 3
    # sending again is a sign of life: the next sweep within the delay leaves them
    assert _sweep(store, after_s=60)[1]["chunks"] == []


def test_committed_chunks_leave_and_the_report_becomes_pending(store):
    from worker.events.pipeline import run_chunk
    from worker.settings import get_settings

    _import(store, "imp2", 2)
    store.work.set_total("imp2", 2)
    run_chunk(store, "imp2", 0, get_settings())
    mine = lambda: [m.decode() for m in store.r.zrange(keys.PENDING, 0, -1) if m.startswith(b"imp2/")]
    assert mine() == ["imp2/1"]
    assert run_chunk(store, "imp2", 1, get_settings()).finalize
    assert mine() == ["imp2/report"]
    time.sleep(0.01)  # (the commit rounds its time to the ms, the sweep truncates: be past it)
    swept, sent = _sweep(store)
    assert sent["reports"] == ["imp2"] and swept.reports == 1 and not sent["chunks"]
    from worker.tasks import run_finalize

    run_finalize(store, "imp2", get_settings())
    assert store.r.zscore(keys.PENDING, "imp2/report") is None  # (its notification is pending until it is done)


def test_lost_rows_fail_the_chunk_and_expired_imports_are_forgotten(store):
    _import(store, "imp3", 2)
    store.r.delete(keys.import_chunk("imp3", 1))  # its rows expired before any worker got it
    store.r.zadd(keys.PENDING, {"gone/0": 1})  # an import that expired altogether
    swept, sent = _sweep(store)
    assert sent["chunks"] == [("imp3", 0)] and sent["failed"] == [("imp3", 1)]
    assert swept.dropped == 2 and store.r.zscore(keys.PENDING, "gone/0") is None


def test_deliveries_that_never_ended_are_counted(store):
    from worker.ops.retries import run_or_reject

    def deliver():
        return run_or_reject(store.work, "imp4", 0, 2, run=lambda: "processed", fail=lambda reason, code: code)

    _import(store, "imp4", 1)
    assert deliver() == "processed"
    store.work.begin_try("imp4", 0)  # three deliveries that died with their worker
    store.work.begin_try("imp4", 0)
    store.work.begin_try("imp4", 0)
    assert deliver() == "chunk_poison"
    assert store.r.hlen(keys.import_tries("imp4")) == 3  # the three marks left by the dead deliveries


def test_chunks_redis_lost_after_the_total_are_failed_and_the_import_ends(store):
    from worker.events.pipeline import fail_chunk, run_chunk
    from worker.settings import get_settings
    from worker.tasks import run_finalize

    settings = get_settings()
    _import(store, "imp5", 4)
    store.r.hset(keys.import_hash("imp5"), "rows_expected", 4)
    # Redis rolled back to before chunks 1 and 2 were stored (their rows, pending entries, count: all gone),
    # and the producer, which had stored them, went on to record its total of 4
    for chunk in (1, 2):
        store.r.delete(keys.import_chunk("imp5", chunk))
        store.r.zrem(keys.PENDING, keys.pending_member("imp5", chunk))
    store.work.set_total("imp5", 4)
    run_chunk(store, "imp5", 0, settings)
    lost: list = []

    def sweep(after_s: float = 0.0):
        return sweeper.sweep(store, after_s, send_chunk=lambda i, c: None, send_report=lambda i: None,
                             fail_chunk=lambda i, c: None, send_notify=lambda i: None, producer_timeout_s=3600,
                             fail_lost=lambda i, c: lost.append(c) or fail_chunk(store, i, c, "lost", settings))

    assert sweep(after_s=3600).lost == 0  # looked at only once its total is older than requeue_after_s
    time.sleep(0.01)
    assert sweep().lost == 2 and lost == [1, 2]  # chunk 3 is still pending: it is sent again, not failed
    assert run_chunk(store, "imp5", 3, settings).finalize
    run_finalize(store, "imp5", settings)
    report = orjson.loads(store.r.hget(keys.import_hash("imp5"), "report"))
    assert (report["status"], report["chunks_lost"], report["rows_lost"], report["rows"]) == ("partially_failed", 2, 2, 2)
    assert "import the file again" in report["resume"]
    assert sweep().lost == 0 and lost == [1, 2]  # an import that ended leaves the closing set at the next look
    assert store.r.zscore(keys.CLOSING, "imp5") is None
