"""People imports against a real Redis and real workers: file order, warnings across chunks, people then events."""
from __future__ import annotations

import dataclasses
import time
from datetime import UTC

import orjson

from producers.source import Source
from producers.split import chunks, scan
from worker import keys
from worker.settings import get_settings
from worker.spec import ImportSpec, new_import_id
from worker.store.people import CONFLICT, NOT_ITS_TURN, read_people

from .helpers import EXAMPLES, clear_keys, counted_once, run_import, write


def people_file(tmp_path, name, header, rows):
    return write(tmp_path, name, "\n".join([header, *rows]) + "\n")


def _plan_order_file(tmp_path, rows=240):
    """Person 1 on every 7th row with a new plan; its e-mail is given once, on row 149."""
    lines = []
    for i in range(rows):
        row = i + 2
        if i % 7 == 0:
            lines.append(f"1,{'one@example.com' if row == 149 else ''},v{row}")
        else:
            lines.append(f"{1000 + i},,p{row}")
    return people_file(tmp_path, "order.csv", "id,email,plan", lines)


def _stage(store, path, chunk_rows=50, **options):
    """A people import whose chunks are stored but not queued, so the test delivers them itself."""
    source = Source.open(path)
    plan = scan(source, people={"mapping": {}, "skip": (), "data_to_process": options.get("data_to_process", "all")})
    spec = ImportSpec(import_id=new_import_id(), columns=plan.columns, identifier=plan.identifier, kind="people",
                      source=str(path), **options)
    store.imports.create(spec, {"rows_expected": plan.rows}, 3600)
    stored = [(c.number, (c.rows, c.row_numbers)) for c in chunks(source, plan, chunk_rows)]
    source.close()
    return spec, stored


def _expected_last_plan(path):
    last = None
    for line in path.read_text().splitlines()[1:]:
        if line.startswith("1,"):
            last = line.split(",")[2]
    return last


def test_people_example_imports_and_people_show_prints_a_person(backfill):
    done = backfill("import", str(EXAMPLES / "people.csv"), "--type", "people", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert (report["kind"], report["imported"], report["people_created"], report["errors"]) == ("people", 4, 4, 0)
    shown = backfill("people", "show", "ann.lee@example.com")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert "id            cust_1001" in text and "2023-03-01T09:30:00.000Z" in text
    assert "plan                    pro" in text and "topic_2                 unsubscribed" in text
    as_json = orjson.loads(backfill("people", "show", "cust_1003", "--json").stdout)
    assert as_json["unsubscribed"] is True and as_json["attributes"]["last_name"] == "Díaz"
    assert isinstance(as_json["created_at"], int)
    assert as_json["topics"] == {"topic_1": False}
    missing = backfill("people", "show", "nobody@example.com")
    assert missing.returncode == 1 and b"no person" in missing.stderr


def test_later_rows_win_across_chunks_with_real_workers(workers, store, tmp_path):
    path = _plan_order_file(tmp_path)
    report = run_import(path, kind="people")
    assert counted_once(report) and report["errors"] == 0 and report["chunks"] == 5
    person = store.people.find("1", "id")
    assert person["a:plan"] == _expected_last_plan(path) and person["email"] == "one@example.com"
    assert report["people_created"] == 1 + (240 - 35)


def test_a_chunk_waits_for_the_chunks_before_it(store, tmp_path):
    """Chunks 1..4 arrive first: nothing is applied until chunk 0 is there, then all in file order."""
    from worker.ordered.apply import run_ordered

    spec, stored = _stage(store, _plan_order_file(tmp_path))
    calls = []
    run = lambda: run_ordered(store, spec.import_id, get_settings(), on_finalize=lambda: calls.append("final"),
                              on_handover=calls.append)
    for number, payload in stored[1:]:
        store.work.put_chunk(spec.import_id, number, *payload, 3600)
    assert run() == 0 and store.people.find("1", "id") is None and store.imports.state(spec.import_id)["chunks_done"] == "0"
    store.work.set_total(spec.import_id, len(stored))
    store.work.put_chunk(spec.import_id, 0, *stored[0][1], 3600)
    assert run() == len(stored) and calls == ["final"]
    assert store.people.find("1", "id")["a:plan"] == _expected_last_plan(tmp_path / "order.csv")


def test_a_commit_out_of_turn_or_against_a_changed_directory_writes_nothing(store, tmp_path):
    from worker.people.pipeline import apply_chunk

    spec, stored = _stage(store, _plan_order_file(tmp_path))
    for number, payload in stored:
        store.work.put_chunk(spec.import_id, number, *payload, 3600)
    early = store.people.commit(spec, 1, _changes_of(store, spec, 1), [], [], at_ms=0, retention_s=60)
    assert early.status == NOT_ITS_TURN and store.imports.state(spec.import_id)["chunks_done"] == "0"
    # chunk 0 decided against a snapshot, then person 1 changes under it: refused, nothing written
    apply_chunk(store, spec, 0, get_settings())
    changes = _changes_of(store, spec, 1)
    person = store.people.find("1", "id")
    store.r.set(keys.person(person["cio_id"]), orjson.dumps({**person, "_v": str(int(person["_v"]) + 1)}))
    refused = store.people.commit(spec, 1, changes, [], [], at_ms=0, retention_s=60)
    assert refused.status == CONFLICT and store.imports.state(spec.import_id)["chunks_done"] == "1"
    assert apply_chunk(store, spec, 1, get_settings()).status == 1  # a fresh snapshot commits
    assert store.imports.state(spec.import_id)["next_chunk"] == "2"


def test_people_stored_as_hashes_before_records_became_one_string_are_read_checked_and_rewritten(store, tmp_path):
    """An upgrade in the middle of an import: the people its first chunks wrote are hashes of fields (as
    stored before). The next chunks read them, check their versions against them (a hash changed since
    the snapshot refuses the commit) and write them as one string; people no chunk touches again stay
    hashes and are still found."""
    from worker.people.pipeline import apply_chunk

    spec, stored = _stage(store, _plan_order_file(tmp_path))
    store.work.set_total(spec.import_id, len(stored))
    for number, payload in stored:
        store.work.put_chunk(spec.import_id, number, *payload, 3600)
    for number in (0, 1):
        assert apply_chunk(store, spec, number, get_settings()).status == 1
    for name in [k.decode() for k in store.r.scan_iter(keys.person("*"))]:  # as stored before this version
        state = orjson.loads(store.r.get(name))
        store.r.delete(name)
        store.r.hset(name, mapping=state)
    one = store.people.find("1", "id")
    assert store.r.type(keys.person(one["cio_id"])) == b"hash" and one["_v"] == "2"
    changes = _changes_of(store, spec, 2)
    store.r.hincrby(keys.person(one["cio_id"]), "_v", 1)
    refused = store.people.commit(spec, 2, changes, [], [], at_ms=0, retention_s=60)
    assert refused.status == CONFLICT and store.imports.state(spec.import_id)["next_chunk"] == "2"
    store.r.hincrby(keys.person(one["cio_id"]), "_v", -1)
    for number in range(2, len(stored)):
        assert apply_chunk(store, spec, number, get_settings()).status == 1
    assert store.r.type(keys.person(one["cio_id"])) == b"string"
    one = store.people.find("1", "id")
    assert one["a:plan"] == _expected_last_plan(tmp_path / "order.csv") and one["_v"] == "5"
    assert one["email"] == "one@example.com" and store.people.find("one@example.com", "email") == one
    early = store.people.find("1001", "id")  # row 3, chunk 0: never written again
    assert store.r.type(keys.person(early["cio_id"])) == b"hash" and early["a:plan"] == "p3"


def test_people_are_read_in_one_round_trip_and_people_still_hashes_in_two(redis_url, store):
    """read_people answers 9,000 keys of people stored as one string and of nobody (a dry run's shadow
    layer is mostly nobody) in one round trip to Redis; with people stored as a hash of fields as before
    among them, in two, every answer the same."""
    import redis

    class Counting(redis.Connection):
        round_trips = 0

        def send_packed_command(self, command, check_health=True):
            Counting.round_trips += 1
            super().send_packed_command(command, check_health)

    client = redis.Redis(connection_pool=redis.ConnectionPool.from_url(redis_url, connection_class=Counting))
    client.ping()
    names, want = [], []
    writes = store.r.pipeline(transaction=False)
    for n in range(9000):
        name, state = keys.person(f"rt{n}"), {"cio_id": f"rt{n}", "email": f"p{n}@x.co", "_v": str(n % 7 + 1)}
        if n % 4 == 3:
            state = None
        else:
            writes.set(name, orjson.dumps(state))
        names.append(name)
        want.append(state)
    writes.execute()
    Counting.round_trips = 0
    assert read_people(client, names) == want and Counting.round_trips == 1
    assert read_people(client, [keys.person("nobody")]) == [None] and read_people(client, []) == []
    assert Counting.round_trips == 2
    for n in range(1, 9000, 4):  # as stored before this version
        store.r.delete(names[n])
        store.r.hset(names[n], mapping=want[n])
    assert read_people(client, names[:4]) == want[:4]  # (the first call may load its script)
    Counting.round_trips = 0
    assert read_people(client, names) == want and Counting.round_trips == 2


def test_a_commit_checks_and_writes_every_index_entry_of_a_big_chunk(store, tmp_path):
    # 1,200 new people in one chunk: 2,400 index entries, checked and written 500 at a time an index
    lines = [f"{i},p{i}@example.com,x" for i in range(1200)]
    spec, stored = _stage(store, people_file(tmp_path, "big.csv", "id,email,plan", lines), chunk_rows=1200)
    store.work.put_chunk(spec.import_id, 0, *stored[0][1], 3600)
    changes = _changes_of(store, spec, 0)
    assert len(changes.index) == 2400
    for kind, key in [("id", "1100"), ("email", "p1199@example.com"), ("email", "p0@example.com")]:
        index = keys.PEOPLE_BY_ID if kind == "id" else keys.PEOPLE_BY_EMAIL
        store.r.hset(index, key, "someone-else")  # taken after the snapshot, in the chunk's last slice or first
        refused = store.people.commit(spec, 0, changes, [], [], at_ms=0, retention_s=60)
        assert refused.status == CONFLICT and store.imports.state(spec.import_id)["chunks_done"] == "0"
        store.r.hdel(index, key)
    assert store.r.hlen(keys.PEOPLE_BY_ID) == 0 and store.r.hlen(keys.PEOPLE_BY_EMAIL) == 0  # nothing written
    assert store.people.commit(spec, 0, changes, [], [], at_ms=0, retention_s=60).status == 1
    by_id, by_email = store.r.hgetall(keys.PEOPLE_BY_ID), store.r.hgetall(keys.PEOPLE_BY_EMAIL)
    assert len(by_id) == len(by_email) == 1200
    assert all(by_email[f"p{i}@example.com".encode()] == by_id[str(i).encode()] for i in range(1200))
    assert store.people.find("1199", "id")["email"] == "p1199@example.com"
    # the import's memory of every row's e-mail and id (the file warnings of later chunks read it)
    assert store.r.hlen(keys.import_seen(spec.import_id)) == len(changes.seen) == 2400


def test_a_chunk_read_ahead_is_applied_in_its_turn_and_sees_a_cancel_made_after_the_read(store, tmp_path):
    """The holder reads the next chunk while the current one commits (worker/ordered/read_ahead.py): what it read
    serves only that chunk, a cancel made after the read still skips its rows, and a read that failed is
    forgotten (the chunk is read again in its turn)."""
    from worker.ordered.read_ahead import ReadAhead
    from worker.people.pipeline import apply_chunk, prepare

    spec, stored = _stage(store, _plan_order_file(tmp_path))
    for number, payload in stored:
        store.work.put_chunk(spec.import_id, number, *payload, 3600)
    ahead_of_1 = prepare(store, spec, 1)
    assert ahead_of_1 is not None and ahead_of_1.chunk == 1 and len(ahead_of_1.validated.rows) == 50
    store.r.set(keys.import_chunk(spec.import_id, 2), b"not rows")
    ahead = ReadAhead(store, spec)
    ahead.start(2)
    assert ahead.take(2) is None and ahead.take(3) is None  # the read failed; nothing was read for 3
    ahead.start(3)
    assert ahead.take(3).chunk == 3
    ahead.close()
    # given to another chunk, it is not used: chunk 0 applies its own rows
    assert apply_chunk(store, spec, 0, get_settings(), ready=ahead_of_1).status == 1
    assert store.people.find("1", "id")["a:plan"] == "v51" and store.imports.state(spec.import_id)["next_chunk"] == "1"
    assert store.imports.stop(spec.import_id, "cancelled")[0] == 1
    assert apply_chunk(store, spec, 1, get_settings(), ready=ahead_of_1).status == 1
    state = store.imports.state(spec.import_id)
    assert state["rows_cancelled"] == "50" and state["next_chunk"] == "2"
    assert store.people.find("1", "id")["a:plan"] == "v51"  # chunk 1's rows (v58, v65, ...) were skipped
    assert prepare(store, spec, 3) is None  # nothing is read ahead for a cancelled import


def _changes_of(store, spec, number):

    from worker.people.directory import Rules, apply_rows
    from worker.people.rows import validate_people

    rows, numbers = store.work.load_chunk(spec.import_id, number)
    valid = validate_people(rows, numbers, spec.columns, tz=UTC, clear_empty=False)
    return apply_rows(valid.rows, store.people.snapshot(spec, valid.rows), Rules(identifier="id", now_s=1))


def test_chunk_tasks_delivered_in_reverse_apply_in_file_order(workers, store, tmp_path):
    from worker.tasks import process_chunk

    path = _plan_order_file(tmp_path)
    spec, stored = _stage(store, path, data_to_process="all")
    for number, payload in stored:
        store.work.put_chunk(spec.import_id, number, *payload, 3600)
    for number, _ in reversed(stored):
        process_chunk.apply_async((spec.import_id, number))
    store.work.set_total(spec.import_id, len(stored))
    deadline = time.monotonic() + 30
    while store.imports.state(spec.import_id).get("chunks_done") != str(len(stored)):
        assert time.monotonic() < deadline, store.imports.state(spec.import_id)
        time.sleep(0.05)
    assert store.people.find("1", "id")["a:plan"] == _expected_last_plan(path)
    assert store.people.find("1", "id")["_v"] == "5"  # one write per chunk that touched person 1


def test_only_new_with_repeats_across_chunks_keeps_the_first_row_and_dry_run_previews_it(workers, store, tmp_path):
    rows = [f"{i % 60},v{i + 2}" for i in range(150)]  # ids 0..59 each on rows i, i+60, i+120
    path = people_file(tmp_path, "new.csv", "id,plan", rows)
    preview = run_import(path, kind="people", data_to_process="only_new", dry_run=True)
    assert store.people.find("0", "id") is None
    real = run_import(path, kind="people", data_to_process="only_new")
    counters = ("rows", "imported", "duplicates", "errors", "people_created", "people_skipped", "people_updated")
    assert {k: preview[k] for k in counters} == {k: real[k] for k in counters}
    assert (real["imported"], real["people_created"], real["people_skipped"], real["duplicates"]) == (60, 60, 90, 90)
    assert counted_once(real)
    assert store.people.find("5", "id")["a:plan"] == "v7"  # row 7 is the first row of id 5


def test_same_email_in_different_chunks_is_a_warning_naming_the_first_row(workers, store, tmp_path):
    rows = [f"{i},p{i}@example.com" for i in range(120)]
    rows[78] = "78,p1@example.com"   # row 80 repeats row 3's e-mail, two chunks later
    path = people_file(tmp_path, "dupes.csv", "id,email", rows)
    report = run_import(path, kind="people", settings=dataclasses.replace(get_settings(),
                                                                         workspace_identifiers="id_only"))
    assert report["warnings"] == 1 and report["errors"] == 0 and report["imported"] == 120
    warnings = "".join(report["_handle"].problems_csv("warnings"))
    assert "78,p1@example.com,80,duplicate_email: 'p1@example.com' is also on row 3" in warnings
    assert not store.r.exists(keys.import_seen(report["import_id"]))  # the memory goes with the finished import


def test_same_id_with_another_email_in_a_later_chunk_is_a_warning(workers, store, tmp_path):
    rows = [f"{i},p{i}@example.com" for i in range(120)] + ["5,other@example.com"]
    path = people_file(tmp_path, "ids.csv", "id,email", rows)
    id_only = dataclasses.replace(get_settings(), workspace_identifiers="id_only")
    report = run_import(path, kind="people", settings=id_only)
    assert report["warnings"] == 1 and report["imported"] == 121
    assert "id_multiple_emails: id '5' is paired with a different e-mail on row 7" in \
        "".join(report["_handle"].problems_csv("warnings"))
    assert store.people.find("5", "id")["email"] == "other@example.com"
    # in an email-or-id workspace the same file cannot change person 5's e-mail: a row error
    clear_keys(store.r)
    strict = run_import(path, kind="people")
    assert strict["errors"] == 1 and "failed_attribute_change" in "".join(strict["_handle"].problems_csv("errors"))


def test_people_then_events_for_the_same_people(workers, store, tmp_path, backfill):
    people = people_file(tmp_path, "p.csv", "id,email,first_name", [f"{i},u{i}@example.com,U{i}" for i in range(60)])
    assert run_import(people, kind="people")["people_created"] == 60
    by_id = write(tmp_path, "e.csv", "_cio_name,_cio_customer_id,_cio_timestamp\n"
                  + "".join(f"login,{i},{1704067200 + i}\n" for i in range(58, 63)))
    report = run_import(by_id)
    assert (report["imported"], report["errors"]) == (2, 3)
    assert "person_not_found" in "".join(report["_handle"].problems_csv("errors"))
    by_email = write(tmp_path, "v.csv", "email,event_name\n" + "".join(f"U{i}@Example.com,open\n" for i in range(5)))
    assert run_import(by_email)["imported"] == 5
    created = backfill("import", str(by_id), "--create-people", "--wait", "--json")
    assert orjson.loads(created.stdout)["people_created"] == 3
    assert store.people.find("62", "id")["cio_id"]


def test_events_by_a_shared_email_in_an_id_only_workspace_are_row_errors(workers, store, tmp_path):
    id_only = dataclasses.replace(get_settings(), workspace_identifiers="id_only")
    people = people_file(tmp_path, "p.csv", "id,email", ["1,same@example.com", "2,same@example.com"])
    assert run_import(people, kind="people", settings=id_only)["people_created"] == 2
    events = write(tmp_path, "e.csv", "email,event_name\nsame@example.com,open\n")
    report = run_import(events)
    assert report["errors"] == 1 and "ambiguous_email" in "".join(report["_handle"].problems_csv("errors"))
    refused = run_import(events, create_people=True, settings=id_only)
    assert refused["status"] == "failed" and refused["failure_code"] == "cannot_create_by_email"


def test_cio_id_file_changes_identifiers_and_errors_file_reimports(workers, store, tmp_path):
    run_import(people_file(tmp_path, "p.csv", "id,email", ["1,a@example.com", "2,b@example.com"]), kind="people")
    cio = store.people.find("1", "id")["cio_id"]
    path = people_file(tmp_path, "c.csv", "cio_id,email,plan", [f"{cio},new@example.com,pro", "ffff,x@example.com,pro",
                                                               f"{cio},b@example.com,pro"])
    report = run_import(path, kind="people")
    assert (report["identifier"], report["imported"], report["errors"]) == ("cio_id", 1, 2)
    assert store.people.find("new@example.com", "email")["id"] == "1" and store.people.find("a@example.com", "email") is None
    errors = "".join(report["_handle"].problems_csv("errors"))
    assert "person_not_found" in errors and "identifier_taken" in errors
    fixed = write(tmp_path, "fixed.csv", errors.lstrip("\ufeff").replace("ffff", cio).replace("b@example", "c@example"))
    again = run_import(fixed, kind="people")
    assert (again["imported"], again["errors"]) == (2, 0)
    assert store.people.find("1", "id")["email"] == "c@example.com"


def test_cli_map_skip_empty_cells_and_column_warnings(backfill, tmp_path):
    first = people_file(tmp_path, "a.csv", "Customer,Mail,first name,secret,News",
                        ["7,Seven@Example.com,Sev,s3,yes"])
    options = ("--type", "people", "--map", "Customer=id", "--map", "Mail=email", "--skip", "secret",
               "--map", "News=cio_subscription_preferences.topics.topic_news")
    shown = backfill("inspect", str(first), *options[:2], *options[2:])
    assert shown.returncode == 0, shown.stderr
    assert b"looked up by id" in shown.stdout and b"'secret'                 dropped" in shown.stdout
    done = backfill("import", str(first), *options, "--wait", "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["column_warnings"][0].startswith("column C 'first name' has spaces")
    person = orjson.loads(backfill("people", "show", "seven@example.com", "--json").stdout)
    assert person["attributes"] == {"first name": "Sev"} and person["topics"] == {"topic_news": True}
    second = people_file(tmp_path, "b.csv", "Customer,first name,News", ["7,,"])
    kept = backfill("import", str(second), *options[:4], "--map", "News=cio_subscription_preferences.topics.t",
                    "--wait")
    assert kept.returncode == 0, kept.stderr + kept.stdout
    assert orjson.loads(backfill("people", "show", "7", "--json").stdout)["attributes"] == {"first name": "Sev"}
    cleared = backfill("import", str(second), "--type", "people", "--map", "Customer=id", "--empty-cells", "clear",
                       "--wait")
    assert cleared.returncode == 0, cleared.stderr + cleared.stdout
    assert orjson.loads(backfill("people", "show", "7", "--json").stdout)["attributes"] == {}
    refused = backfill("import", str(second), "--type", "people", "--wait")
    assert refused.returncode == 1 and b"no identifier column" in refused.stderr


def _people_in_outbox(store) -> dict[str, dict]:
    """Each person's latest whole state the outbox carries (the highest version wins, as in the database)."""
    latest: dict[str, dict] = {}
    for _, fields in store.r.xrange(keys.OUTBOX):
        for state in orjson.loads(fields.get(b"people", b"[]")):
            if int(state["_v"]) >= int(latest.get(state["cio_id"], {"_v": 0})["_v"]):
                latest[state["cio_id"]] = state
    return latest


def _directory_people(store) -> dict[bytes, dict[str, str] | None]:
    """Every person record in the directory, read as the store reads them."""
    names = list(store.r.scan_iter(keys.person("*")))
    return dict(zip(names, read_people(store.r, [n.decode() for n in names])))


def test_a_person_record_is_exactly_its_latest_state_through_updates_clears_and_a_dry_run(workers, store, tmp_path):
    """Every person's record equals the whole state the outbox carries for them (the database's copy),
    through updates across chunks, attributes cleared and added, e-mails changed by cio_id, and a dry
    run that must leave the records alone: whatever way the commit writes a person, nothing stale stays."""
    rows = [f"{i % 60},p{i % 60}@example.com,plan{i % 4},{'' if i % 5 == 0 else f'c{i}'},{i}" for i in range(180)]
    first = people_file(tmp_path, "first.csv", "id,email,plan,color,score", rows)  # 50-row chunks: 4
    report = run_import(first, kind="people")
    assert counted_once(report) and report["errors"] == 0
    # Cleared cells remove attributes (plan, score; color on odd ids), a new attribute arrives.
    later = [f"{n},,{'' if n % 2 else 'blue'},,{n * 7}" for n in range(0, 60, 2)]
    second = people_file(tmp_path, "second.csv", "id,plan,color,score,size", later)
    before_dry = _directory_people(store)
    assert counted_once(run_import(second, kind="people", empty_cells="clear", dry_run=True))
    assert _directory_people(store) == before_dry
    report = run_import(second, kind="people", empty_cells="clear")
    assert counted_once(report) and report["errors"] == 0
    # New e-mails for a third of them, by cio_id.
    moved = [f"{store.people.find(str(n), 'id')['cio_id']},q{n}@example.com" for n in range(0, 60, 3)]
    report = run_import(people_file(tmp_path, "third.csv", "cio_id,email", moved), kind="people")
    assert counted_once(report) and report["errors"] == 0
    states = _people_in_outbox(store)
    assert len(states) == 60
    for cio, state in states.items():
        stored = store.people.find(cio, "cio_id")
        assert stored == {k: str(v) for k, v in state.items()}, cio
    zero = store.people.find("0", "id")
    assert zero["email"] == "q0@example.com" and zero["a:color"] == "blue" and zero["a:size"] == "0"
    assert "a:plan" not in zero and "a:score" not in zero
    assert store.people.find("p0@example.com", "email") is None  # its old e-mail left the index
    assert store.people.find("q0@example.com", "email")["cio_id"] == zero["cio_id"]
