"""Events imports end to end: file -> producer -> Redis queue -> worker processes -> commit -> report."""
from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime

from worker import keys
from worker.timestamps import iso

from .helpers import EXAMPLES, counted_once, run_import, write

VERO_PUBLISHED = (
    "email, event_name, time, item_type\n"
    "tyrion.lannister@casterlyrock.com, Completes checkout, 2022-01-02 13:05+10, yellow_shirt\n"
    "tyrion.lannister@casterlyrock.com, Completes checkout, 2022-01-15 02:00+10, green_shirt\n"
    "tyrion.lannister@casterlyrock.com, Completes checkout, 2022-01-25 04:20+10, red_hat\n"
)


def test_published_vero_example(store, workers, tmp_path):
    store.people.add("email", "tyrion.lannister@casterlyrock.com")
    report = run_import(write(tmp_path, "vero.csv", VERO_PUBLISHED))
    assert report["status"] == "completed" and report["imported"] == 3 and report["dialect"] == "vero"
    events = sorted(store.events.read(report["import_id"]), key=lambda e: e["row"])
    assert [e["person"] for e in events] == [{"email": "tyrion.lannister@casterlyrock.com"}] * 3
    assert {e["name"] for e in events} == {"Completes checkout"}
    assert [iso(e["timestamp"]) for e in events] == ["2022-01-02T03:05:00.000Z", "2022-01-14T16:00:00.000Z",
                                           "2022-01-24T18:20:00.000Z"]
    assert [e["data"] for e in events] == [{"item_type": "yellow_shirt"}, {"item_type": "green_shirt"},
                                           {"item_type": "red_hat"}]


def test_published_customerio_columns(store, workers, tmp_path):
    for person in ("cust_1", "cust_2"):
        store.people.add("id", person)
    path = write(tmp_path, "cio.csv",
                 "_cio_name,_cio_customer_id,_cio_timestamp,property.subproperty,plan\n"
                 " purchase ,cust_1,1642212000,x,pro\n"
                 "purchase,cust_2,2022-01-15T02:00:00+02:00,,basic\n")
    report = run_import(path)
    assert report["status"] == "completed" and report["dialect"] == "customerio" and report["identifier"] == "id"
    first, second = sorted(store.events.read(report["import_id"]), key=lambda e: e["row"])
    assert first["name"] == "purchase"  # trimmed
    assert first["person"] == {"id": "cust_1"} and iso(first["timestamp"]) == "2022-01-15T02:00:00.000Z"
    assert first["data"] == {"property.subproperty": "x", "plan": "pro"}  # flat: the literal key
    assert iso(second["timestamp"]) == "2022-01-15T00:00:00.000Z" and second["data"] == {"plan": "basic"}


def test_unknown_people_are_row_errors_unless_created(store, workers):
    report = run_import(EXAMPLES / "vero_events.csv")
    assert report["errors"] == 3 and report["imported"] == 0
    assert "person_not_found" in "".join(report["_handle"].problems_csv("errors"))
    created = run_import(EXAMPLES / "vero_events.csv", create_people=True)
    assert created["imported"] == 3 and created["people_created"] == 1
    person = store.people.find("Tyrion.Lannister@casterlyrock.com", "email")
    assert person["email"] == "tyrion.lannister@casterlyrock.com" and person["cio_id"]


def test_importing_the_same_file_twice_imports_nothing_the_second_time(store, workers):
    first = run_import(EXAMPLES / "customerio_events.csv", create_people=True)
    second = run_import(EXAMPLES / "customerio_events.csv", create_people=True)
    assert first["imported"] == 4 and first["duplicates"] == 0
    assert second["imported"] == 0 and second["duplicates"] == 4 and second["status"] == "completed"
    assert len(list(store.events.read())) == 4


def test_expired_marks_are_ignored_then_pruned(store, workers):
    run_import(EXAMPLES / "customerio_events.csv", create_people=True)
    shards = list(store.r.scan_iter(match=keys.DEDUPE_PREFIX + "*"))
    marks = sum(store.r.hlen(s) for s in shards)
    assert marks == 4 and all(store.r.ttl(s) == -1 for s in shards)  # no TTL: pruning frees them
    now_ms = int(time.time() * 1000)
    assert store.events.prune_dedupe(now_ms) == 0  # nothing expired yet
    for shard in shards:  # the dedupe window passes: every mark's expiry hour is behind us
        for field in store.r.hkeys(shard):
            store.r.hset(shard, field, now_ms // 3_600_000 - 1)
    again = run_import(EXAMPLES / "customerio_events.csv", create_people=True)
    assert (again["imported"], again["duplicates"]) == (4, 0)  # expired marks do not count
    for shard in shards:
        for field in store.r.hkeys(shard):
            store.r.hset(shard, field, now_ms // 3_600_000 - 1)
    assert store.events.prune_dedupe(now_ms) == 4
    assert not list(store.r.scan_iter(match=keys.DEDUPE_PREFIX + "*"))  # an emptied hash is gone


def test_duplicates_within_a_file_across_chunks_and_by_event_id(store, workers, tmp_path):
    lines = ["email,event_name,time,event_id"]
    for i in range(120):
        lines.append(f"p{i % 7}@example.com,viewed,2024-01-01T00:00:{i % 60:02d}Z,")  # rows 60 apart repeat
    lines += ["a@example.com,paid,,E-1", "b@example.com,refunded,,E-1"]  # same id: one event
    report = run_import(write(tmp_path, "dups.csv", "\n".join(lines) + "\n"), create_people=True)
    assert report["rows"] == 122 and counted_once(report)
    distinct = len({(i % 7, i % 60) for i in range(120)})
    assert report["imported"] == distinct + 1 and report["duplicates"] == 122 - distinct - 1


def test_bad_rows_sprinkled_through_a_file_are_each_counted_once(store, workers, tmp_path):
    lines, bad = ["email,event_name,time,amount,recipient"], set()
    for i in range(2, 503):  # file rows 2..502, ten chunks of 50
        if i % 17 == 0:
            lines.append(f"p{i}@example.com,Ordered,not a time,1,"); bad.add(i)
        elif i % 23 == 0:
            lines.append(f"p{i}-no-at,Ordered,2024-01-01,1,"); bad.add(i)
        elif i % 31 == 0:
            lines.append(f"p{i}@example.com,Ordered,2024-01-01,1,nobody"); bad.add(i)
        elif i % 37 == 0:
            lines.append(f"p{i}@example.com,,2024-01-01,1,"); bad.add(i)
        else:
            lines.append(f"p{i}@example.com,Ordered,2024-01-{i % 28 + 1:02d}T10:00:00Z,{i}.5,")
    report = run_import(write(tmp_path, "sprinkled.csv", "\n".join(lines) + "\n"), create_people=True)
    assert report["rows"] == 501 and counted_once(report)
    assert report["errors"] == len(bad) and report["imported"] == 501 - len(bad)
    assert report["status"] == "completed_with_errors" and report["chunks"] == 11
    text = "".join(report["_handle"].problems_csv("errors"))
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert {int(r["_row"]) for r in rows} == bad
    assert all(r["_errors"] for r in rows)
    imported_rows = {e["row"] for e in store.events.read(report["import_id"])}
    assert imported_rows == set(range(2, 503)) - bad


def test_errors_csv_round_trips_once_corrected(store, workers, tmp_path):
    path = write(tmp_path, "orders.csv",
                 "email,event_name,time,note\n"
                 "ada@example.com,Ordered,2024-01-01T00:00:00Z,=1+2\n"
                 "grace@example.com,Ordered,yesterday,-12.5\n"
                 "bob-at-example,Ordered,2024-01-03T00:00:00Z,@SUM(A1)\n")
    report = run_import(path, create_people=True)
    assert report["errors"] == 2 and report["imported"] == 1
    errors_file = tmp_path / "errors.csv"
    errors_file.write_text("".join(report["_handle"].problems_csv("errors")), encoding="utf-8")
    text = errors_file.read_text(encoding="utf-8-sig")
    assert "'@SUM(A1)" in text and ",-12.5," in text  # neutralized; the number kept
    fixed = text.replace("yesterday", "2024-01-02T00:00:00Z").replace("bob-at-example", "bob@example.com")
    errors_file.write_text("\ufeff" + fixed, encoding="utf-8")
    again = run_import(errors_file, create_people=True)
    assert again["status"] == "completed" and again["imported"] == 2
    events = {e["person"]["email"]: e for e in store.events.read(again["import_id"])}
    assert events["bob@example.com"]["data"] == {"note": "@SUM(A1)"}  # our escape undone
    assert events["grace@example.com"]["data"] == {"note": "-12.5"}
    assert all("_row" not in e["data"] and "_errors" not in e["data"] for e in events.values())


def test_bom_cp1252_semicolon_and_multiline_files(store, workers, tmp_path):
    bom = write(tmp_path, "bom.csv", "\ufeffemail,event_name,city\nzoe@example.com,Visited,Orléans\n")
    cp = write(tmp_path, "cp.csv", "email,event_name,city\nzoe@example.com,Commandé,Zürich\n", "cp1252")
    semi = write(tmp_path, "semi.csv", "email;event_name;amount\nzoe@example.com;Paid;12,50\n")
    multi = write(tmp_path, "multi.csv",
                  'email,event_name,note\nzoe@example.com,Wrote,"first line\nsecond, line"\nzoe@example.com,Wrote,x\n')
    results = {}
    for path in (bom, cp, semi, multi):
        report = run_import(path, create_people=True)
        assert report["status"] == "completed", report
        results[path.name] = (report, sorted(store.events.read(report["import_id"]), key=lambda e: e["row"]))
    assert results["bom.csv"][1][0]["data"] == {"city": "Orléans"}
    assert results["cp.csv"][0]["encoding"] == "cp1252"
    assert results["cp.csv"][1][0]["name"] == "Commandé" and results["cp.csv"][1][0]["data"] == {"city": "Zürich"}
    assert results["semi.csv"][1][0]["data"] == {"amount": "12,50"}
    multi_events = results["multi.csv"][1]
    assert [e["row"] for e in multi_events] == [2, 3]
    assert multi_events[0]["data"] == {"note": "first line\nsecond, line"}


def test_file_problems_fail_before_anything_is_queued(store, workers, tmp_path):
    import zipfile

    xlsx = tmp_path / "events.csv"
    with zipfile.ZipFile(xlsx, "w") as workbook:
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    quote = write(tmp_path, "quote.csv", "email,event_name\n" + "a@b.co,x\n" * 300 + 'a@b.co,"x\n')
    for path, words in ((xlsx, "Excel workbook"), (quote, "unterminated quote")):
        report = run_import(path)
        assert report["status"] == "failed" and words in report["failure"], report
        iid = report["import_id"]
        assert not list(store.r.scan_iter(match=keys.import_chunk(iid, 0) + "*"))
        assert report["_handle"].exit_code() == 1
    assert not list(store.events.read())


def test_dry_run_writes_nothing_and_previews_triggers(store, workers, tmp_path):
    from worker.events.rules import Campaign

    store.triggers.add_campaign(Campaign("thanks", "purchase", 0))
    store.triggers.add_campaign(Campaign("later", "purchase", 10 * 86400))
    now = time.time()
    path = write(tmp_path, "dry.csv", "_cio_name,_cio_customer_id,_cio_timestamp\n"
                 f"purchase,new_1,{int(now - 3600)}\npurchase,new_2,{int(now - 20 * 86400)}\n")
    report = run_import(path, dry_run=True, create_people=True, trigger=True, trigger_window="none")
    assert report["dry_run"] and report["imported"] == 2 and report["people_created"] == 2
    assert report["triggers"]["sent_now"] == 2 and report["triggers"]["scheduled"] == 1
    assert report["triggers"]["discarded"] == 1
    assert not list(store.events.read()) and not store.triggers.scheduled() and not store.triggers.deliveries()
    assert store.people.find("new_1", "id") is None
    assert not list(store.r.scan_iter(match=keys.DEDUPE_PREFIX + "*"))
    # Its shadow memory of what it would have written goes with the report: nothing lingers for a month.
    assert not list(store.r.scan_iter(match=keys.import_shadow(report["import_id"]) + "*"))


def test_stdin_and_gzip(store, workers, tmp_path):
    import gzip

    from producers.api import enqueue_import

    data = b"email,event_name,time\na@example.com,x,2024-01-01T00:00:00Z\n"
    handle = enqueue_import("-", stdin=io.BytesIO(data), create_people=True)
    assert handle.wait(timeout=30)["imported"] == 1
    gz = tmp_path / "e.csv.gz"
    gz.write_bytes(gzip.compress(data.replace(b"a@", b"b@")))
    assert run_import(gz, create_people=True)["imported"] == 1


def test_naive_times_in_the_import_time_zone(store, workers, tmp_path):
    path = write(tmp_path, "tz.csv", "email,event_name,time\na@example.com,x,2024-07-01 12:00\n")
    report = run_import(path, create_people=True, timezone="Europe/Paris")
    [event] = store.events.read(report["import_id"])
    assert event["timestamp"] == int(datetime(2024, 7, 1, 10, tzinfo=UTC).timestamp())


def test_dry_run_predicts_the_real_run_across_chunks(store, workers, tmp_path):
    lines = ["email,event_name,time,event_id"]
    for i in range(160):  # four chunks; people and events repeat across them
        lines.append(f"p{i % 9}@example.com,viewed,2024-02-01T00:00:{i % 45:02d}Z,")
    lines.append("p1@example.com,paid,,E-9")
    lines.append("p2@example.com,paid,,E-9")
    path = write(tmp_path, "predict.csv", "\n".join(lines) + "\n")
    dry = run_import(path, dry_run=True, create_people=True)
    real = run_import(path, create_people=True)
    for field in ("rows", "imported", "duplicates", "errors", "people_created"):
        assert dry[field] == real[field], field
    assert real["people_created"] == 9 and real["duplicates"] > 0
    assert not list(store.r.scan_iter(match=f"bf:imp:{real['import_id']}:dry:*"))


def test_a_header_only_file_finishes_with_an_empty_report(store, workers, tmp_path):
    report = run_import(write(tmp_path, "empty.csv", "email,event_name,time\r\n\r\n"))
    assert report["status"] == "completed" and report["rows"] == 0 and report["chunks"] == 0
    assert report["blank_rows_skipped"] == 1
