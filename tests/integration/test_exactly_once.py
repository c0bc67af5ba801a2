"""At-least-once delivery, exactly-once effects: replays commit nothing, the report is written once."""
from __future__ import annotations

import time

import orjson

from producers.source import Source
from producers.split import chunks, scan
from worker import keys
from worker.settings import get_settings
from worker.spec import ImportSpec, new_import_id

from .helpers import counted_once, run_import, write


def _staged_import(store, tmp_path, rows: int = 120):
    """An import whose chunks are stored but not queued, so the test runs them itself."""
    lines = ["email,event_name,time"] + [f"p{i}@example.com,x,2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z"
                                         for i in range(rows)]
    path = write(tmp_path, "staged.csv", "\n".join(lines) + "\n")
    source = Source.open(path)
    plan = scan(source)
    spec = ImportSpec(import_id=new_import_id(), columns=plan.columns, identifier=plan.identifier,
                      source=str(path), create_people=True)
    store.imports.create(spec, {"rows_expected": plan.rows}, 3600)
    count = 0
    for chunk in chunks(source, plan, 50):
        store.work.put_chunk(spec.import_id, chunk.number, chunk.rows, chunk.row_numbers, 3600)
        count += 1
    return spec, count


def test_a_chunk_run_twice_commits_once(store, tmp_path):
    from worker.events.pipeline import run_chunk

    spec, count = _staged_import(store, tmp_path)
    first = run_chunk(store, spec.import_id, 0, get_settings())
    state = store.imports.state(spec.import_id)
    again = run_chunk(store, spec.import_id, 0, get_settings())
    assert first.committed and first.imported == 50
    assert not again.committed and again.imported == 0
    assert store.imports.state(spec.import_id) == state
    assert len(list(store.events.read(spec.import_id))) == 50


def test_chunks_committed_out_of_order_and_total_set_last_finalize_once(store, tmp_path):
    from worker.events.pipeline import run_chunk
    from worker.tasks import run_finalize

    spec, count = _staged_import(store, tmp_path)
    results = [run_chunk(store, spec.import_id, n, get_settings()) for n in reversed(range(count))]
    assert not any(r.finalize for r in results)  # total not known yet
    assert store.work.set_total(spec.import_id, count)  # ...so the producer's call finalizes
    assert run_finalize(store, spec.import_id, get_settings())["imported"] == 120
    assert run_finalize(store, spec.import_id, get_settings()) is None
    assert store.imports.state(spec.import_id)["finalize_runs"] == "1"


def test_last_commit_after_total_asks_for_finalize(store, tmp_path):
    from worker.events.pipeline import run_chunk

    spec, count = _staged_import(store, tmp_path)
    assert not store.work.set_total(spec.import_id, count)
    results = [run_chunk(store, spec.import_id, n, get_settings()) for n in range(count)]
    assert [r.finalize for r in results] == [False] * (count - 1) + [True]
    # a redelivered last chunk commits nothing but still sees the import complete
    replay = run_chunk(store, spec.import_id, count - 1, get_settings())
    assert not replay.committed and replay.finalize


def test_every_chunk_published_twice_through_real_workers(store, workers, tmp_path):
    from worker.tasks import process_chunk

    lines = ["email,event_name,time"] + [f"p{i}@example.com,x,2024-01-02T00:00:{i % 60:02d}Z"
                                         for i in range(300)]
    report = run_import(write(tmp_path, "twice.csv", "\n".join(lines) + "\n"), create_people=True)
    iid = report["import_id"]
    for chunk in range(report["chunks"]):  # every chunk delivered again, and its report asked again
        process_chunk.apply_async((iid, chunk))

    def busy() -> bool:  # messages waiting, or taken by a worker and not yet acked (kombu's "unacked")
        return bool(store.r.llen(keys.QUEUE_IMPORTS) or store.r.llen(keys.QUEUE_REPORTS) or store.r.hlen("unacked"))

    deadline = time.monotonic() + 20
    while busy() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not busy(), "the replayed chunks were not all processed"
    state = store.imports.state(iid)
    assert state["finalize_runs"] == "1" and state["chunks_done"] == str(report["chunks"])
    assert state["imported"] == "300" and counted_once(report)
    assert len(list(store.events.read(iid))) == 300


def test_a_chunk_that_raises_ends_as_errors_and_the_import_never_hangs(store, workers, tmp_path):
    import orjson

    from producers.api import ImportHandle
    from worker.tasks import finalize_import, process_chunk

    spec, count = _staged_import(store, tmp_path)
    payload = orjson.loads(store.r.get(keys.import_chunk(spec.import_id, 1)))
    payload["rows"][7] = 42  # not a record: validation raises inside the worker
    store.r.set(keys.import_chunk(spec.import_id, 1), orjson.dumps(payload))
    for chunk in range(count):
        process_chunk.apply_async((spec.import_id, chunk))
    if store.work.set_total(spec.import_id, count):
        finalize_import.apply_async((spec.import_id,))
    report = ImportHandle(spec.import_id).wait(timeout=30)
    assert report is not None, store.imports.state(spec.import_id)
    assert report["status"] == "partially_failed" and report["chunks_failed"] == 1
    assert report["errors"] == 50 and report["imported"] == 70 and report["rows"] == 120
    failed = list(store.imports.problems(spec.import_id, "errors"))
    assert {p["codes"][0] for p in failed} == {"chunk_failed"}
    assert sorted(p["row"] for p in failed) == list(range(52, 102))


def test_more_dedupe_shard_bits_make_more_shards_and_still_dedupe(store):
    import dataclasses
    import time as clock

    from worker import keys as k
    from worker.events.dialects import plan_columns
    from worker.events.pipeline import commit_rows
    from worker.settings import get_settings

    settings = dataclasses.replace(get_settings(), dedupe_shard_bits=20)
    spec = ImportSpec(import_id=new_import_id(), columns=plan_columns(["email", "event_name", "event_id"]),
                      identifier="email", create_people=True)
    store.imports.create(spec, {}, 3600)
    rows, numbers = [[f"p{n}@x.co", "x", f"E{n}"] for n in range(300)], list(range(2, 302))
    first = commit_rows(store, spec, 0, rows, numbers, settings, clock.time())
    again = commit_rows(store, spec, 1, rows, numbers, settings, clock.time())
    assert (first.imported, again.imported, again.duplicates) == (300, 0, 300)
    shards = list(store.r.scan_iter(match=k.DEDUPE_PREFIX + "*"))
    assert shards and {len(s) - len(k.DEDUPE_PREFIX) for s in shards} == {3}  # two bytes and four more bits


def test_the_outbox_holds_exactly_the_events_kept_wherever_the_duplicates_fall(store):
    """commit.lua cuts duplicates out of the chunk's JSON text by their ends: first, last, runs, all."""
    import time as clock

    from worker.events.dialects import plan_columns
    from worker.events.pipeline import commit_rows
    from worker.store.events import Events

    settings = get_settings()
    spec = ImportSpec(import_id=new_import_id(), columns=plan_columns(["email", "event_name", "event_id"]),
                      identifier="email", create_people=True)
    store.imports.create(spec, {}, 3600)
    seen = [[f"p{n}@x.co", "seen", f"S{n}"] for n in range(4)]
    assert commit_rows(store, spec, 0, seen, [2, 3, 4, 5], settings, clock.time()).imported == 4
    # duplicates (S..) first, in a run of two, and last; new events (N..) between them
    rows = [seen[0], ["a@x.co", "new", "N1"], seen[1], seen[2], ["b@x.co", "new", "N2"],
            ["B@x.co", "new", "N3"], seen[3]]
    result = commit_rows(store, spec, 1, rows, list(range(6, 13)), settings, clock.time())
    assert (result.imported, result.duplicates) == (3, 4)
    assert commit_rows(store, spec, 2, seen, [13, 14, 15, 16], settings, clock.time()).imported == 0
    events = list(Events(store.r).read(spec.import_id))
    assert [(e["row"], e["id"]) for e in events] == [(2, "S0"), (3, "S1"), (4, "S2"), (5, "S3"),
                                                    (7, "N1"), (10, "N2"), (11, "N3")]
    # a@ and b@ are new people (B@ is b@): created once each, with consecutive cio_ids after the first four
    people = {store.r.hget(keys.people_index("email"), f"{p}@x.co") for p in ("p0", "p3", "a", "b")}
    assert len(people) == 4 and int(store.r.hget(keys.import_hash(spec.import_id), "people_created")) == 6


def test_a_chunk_whose_event_ids_another_chunk_recorded_meanwhile_writes_nothing_and_decides_again(store):
    """commit.lua decides from the dedupe marks whether the import used a chunk's event ids before: one id
    another chunk used since for another event (wherever it falls among 1,200 ids) refuses the whole commit,
    the marks it had written taken back; the pipeline then decides again, told, and the event is a duplicate
    that warns, naming the other chunk's row. The import remembers its ids in their marks: one write an
    event, no other hash."""
    import time as clock

    from worker.events import chunk as core
    from worker.events import rules
    from worker.events.dialects import plan_columns
    from worker.events.pipeline import commit_rows
    from worker.events.rows import id_field

    settings = get_settings()
    spec = ImportSpec(import_id=new_import_id(), columns=plan_columns(["email", "event_name", "event_id"]),
                      identifier="email", create_people=True)
    store.imports.create(spec, {}, 3600)
    rows = [[f"p{n}@x.co", "x", f"E{n}"] for n in range(1200)]
    numbers = list(range(2, 1202))
    at = clock.time()
    validated = core.validate(spec, rows, numbers, at, 300)
    stale = core.assemble(spec, validated, rows, numbers, {}, rules.NO_CAMPAIGNS, at, 300, {})  # read: nothing seen
    # meanwhile another chunk records E1100 for a different event
    other = commit_rows(store, spec, 1, [["q@x.co", "y", "E1100"]], [5000], settings, at)
    assert other.committed and other.imported == 1
    memory = keys.import_event_ids(spec.import_id)

    def marks() -> int:
        return sum(store.r.hlen(s) for s in store.r.scan_iter(match=keys.DEDUPE_PREFIX + "*"))

    assert marks() == 1 and not store.r.exists(memory)
    refused = store.events.commit(spec, 0, stale, at_ms=round(at * 1000), retention_s=60)
    assert refused.conflict and not refused.committed
    assert list(refused.memory) == [id_field("E1100")] and core.id_row(refused.memory[id_field("E1100")]) == 5000
    assert marks() == 1 and not store.r.sismember(keys.import_done(spec.import_id), 0)

    result = commit_rows(store, spec, 0, rows, numbers, settings, at)
    assert result.committed and (result.imported, result.duplicates) == (1199, 1)
    assert marks() == 1200 and not store.r.exists(memory)
    warned = [orjson.loads(w) for w in store.r.lrange(keys.import_warnings(spec.import_id), 0, -1)]
    assert len(warned) == 1 and "event_id_reused" in str(warned[0]) and "first used on row 5000" in str(warned[0])


def _ids_spec(store, **options):
    from worker.events.dialects import plan_columns

    spec = ImportSpec(import_id=new_import_id(), columns=plan_columns(["email", "event_name", "event_id"]),
                      identifier="email", create_people=True, **options)
    store.imports.create(spec, {}, 3600)
    return spec


def _reused(store, spec) -> list[tuple[int, str]]:
    """(row, the row its warning names as the id's first use) of the import's event_id_reused warnings."""
    import re

    found = []
    for line in store.r.lrange(keys.import_warnings(spec.import_id), 0, -1):
        warned = orjson.loads(line)
        for text, code in zip(warned["problems"], warned["codes"]):
            if code == "event_id_reused":
                found.append((warned["row"], re.search(r"first used on row (\d+)", text).group(1)))
    return sorted(found)


def test_each_running_import_remembers_its_own_first_use_of_an_event_id_whoever_holds_its_mark(store):
    """The mark of an event id holds what the import that wrote it remembers of it; another import that
    brings the id (a duplicate) remembers its own first use in its memory hash: each warns, naming its own
    row, when it uses the id again for another event, whichever chunk and in whatever order they commit."""
    import time as clock

    from worker.events.pipeline import commit_rows

    settings, at = get_settings(), clock.time()
    a, b = _ids_spec(store), _ids_spec(store)
    commit = lambda spec, chunk, rows, numbers: commit_rows(store, spec, chunk, rows, numbers, settings, at)  # noqa: E731
    assert commit(a, 0, [["p@x.co", "x", "X"], ["p@x.co", "x", "Y"]], [2, 3]).imported == 2
    assert not store.r.exists(keys.import_event_ids(a.import_id))  # (A's first uses are in its marks)
    # B brings X and Y first as duplicates, X again within the chunk for another event, then in a later chunk
    first = commit(b, 0, [["q@x.co", "x", "X"], ["q@x.co", "z", "X"], ["q@x.co", "x", "Y"]], [7, 8, 9])
    assert (first.imported, first.duplicates) == (0, 3)
    assert store.r.hlen(keys.import_event_ids(b.import_id)) == 2
    later = commit(b, 1, [["r@x.co", "x", "Y"], ["q@x.co", "x", "X"], ["s@x.co", "x", "Z"]], [20, 21, 22])
    assert (later.imported, later.duplicates) == (1, 2)
    # A, still running, uses X again for another event: its own first row is named, not B's
    again = commit(a, 1, [["t@x.co", "x", "X"], ["s@x.co", "x", "Z"]], [40, 41])
    assert (again.imported, again.duplicates) == (0, 2)
    assert _reused(store, b) == [(8, "7"), (20, "9")]
    assert _reused(store, a) == [(40, "2")]


def test_a_dry_run_warns_of_an_event_id_reused_as_the_import_would(store):
    """A dry run writes no mark: it remembers its ids in its memory hash, and warns as the import would."""
    import time as clock

    from worker.events.pipeline import commit_rows

    settings, at = get_settings(), clock.time()
    spec = _ids_spec(store, dry_run=True)
    one = commit_rows(store, spec, 0, [["p@x.co", "x", "X"], ["p@x.co", "y", "X"]], [2, 3], settings, at)
    two = commit_rows(store, spec, 1, [["q@x.co", "x", "X"], ["q@x.co", "x", "W"]], [9, 10], settings, at)
    assert (one.imported, one.duplicates, two.imported, two.duplicates) == (1, 1, 1, 1)
    assert _reused(store, spec) == [(3, "2"), (9, "2")]
    assert not list(store.r.scan_iter(match=keys.DEDUPE_PREFIX + "*"))


def test_an_expired_mark_makes_its_event_new_again_and_keeps_what_its_import_remembers(store):
    """An expired mark (not pruned yet) is absent for dedupe; what its import remembers in it stays, and a
    refused commit puts back the marks it changed (the commit is all or nothing)."""
    import time as clock

    from worker.events import chunk as core
    from worker.events import rules
    from worker.events.pipeline import commit_rows
    from worker.store.events import _slot, mark_hour

    settings, at = get_settings(), clock.time()
    spec = _ids_spec(store)
    assert commit_rows(store, spec, 0, [["p@x.co", "x", "X"]], [2], settings, at).imported == 1
    key = core.dedupe_key(core.validate(spec, [["p@x.co", "x", "X"]], [2], at, 300).events[0])
    slot = _slot(key, settings.dedupe_shard_bits)
    held = store.r.hget(*slot)
    store.r.hset(*slot, str(mark_hour(held) - 10_000).encode() + held[-16:])  # expired long ago
    expired = store.r.hget(*slot)
    # a chunk told nothing of X uses it for another event, with a new id: refused, the marks as they were
    rows, numbers = [["q@x.co", "y", "X"], ["q@x.co", "y", "V"]], [30, 31]
    validated = core.validate(spec, rows, numbers, at, 300)
    stale = core.assemble(spec, validated, rows, numbers, {}, rules.NO_CAMPAIGNS, at, 300, {})
    refused = store.events.commit(spec, 1, stale, at_ms=round(at * 1000), retention_s=60)
    assert refused.conflict and store.r.hget(*slot) == expired
    assert sum(store.r.hlen(s) for s in store.r.scan_iter(match=keys.DEDUPE_PREFIX + "*")) == 1
    # decided again: X is new again (imported) and warns, naming the import's first row
    result = commit_rows(store, spec, 1, rows, numbers, settings, at)
    assert (result.imported, result.duplicates) == (2, 0)
    assert _reused(store, spec) == [(30, "2")]
    assert mark_hour(store.r.hget(*slot)) > mark_hour(expired) and store.r.hget(*slot)[-16:] == held[-16:]


def test_a_chunk_that_uses_an_id_again_for_another_event_names_the_row_of_its_import_not_its_own(store):
    """The chunk's first use of X is the same event as an earlier chunk's (no warning either way), but a
    later row of the chunk uses X for another event: its warning names the earlier chunk's row, the
    import's first use, as the commit tells (the chunk had taken its own first row for it)."""
    import time as clock

    from worker.events.pipeline import commit_rows

    settings, at = get_settings(), clock.time()
    spec = _ids_spec(store)
    assert commit_rows(store, spec, 0, [["p@x.co", "x", "X"]], [2], settings, at).imported == 1
    later = commit_rows(store, spec, 1, [["p@x.co", "x", "X"], ["q@x.co", "y", "X"]], [50, 51], settings, at)
    assert (later.imported, later.duplicates) == (0, 2)
    assert _reused(store, spec) == [(51, "2")]
