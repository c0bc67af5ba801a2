"""Files as people really have them, through the real CLI and real workers: each test holds a file of
the kind that was once imported wrong, refused, or ended in a traceback."""
from __future__ import annotations

import csv
import gzip
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import orjson

from .helpers import counted_once, run_import, wait_until, write

BACKFILL = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"


def _json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode in (0, 4), done.stderr.decode()
    return orjson.loads(done.stdout)


def _errors_file(backfill, import_id: str, kind: str = "errors") -> str:
    done = backfill(kind, import_id)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("utf-8").lstrip("\ufeff")


def test_in_a_vero_file_id_is_the_person_and_four_events_are_four(backfill, tmp_path):
    path = write(tmp_path, "vero_ids.csv", "id,event_name,time,plan\n" + "".join(
        f"1859,Viewed page,2024-03-0{n}T10:00:00Z,p{n}\n" for n in range(1, 5)))
    report = _json(backfill("import", str(path), "--create-people", "--wait", "--json"))
    assert (report["imported"], report["duplicates"], report["identifier"]) == (4, 0, "id")


def test_an_event_id_reused_for_a_different_event_warns_naming_the_first_row(backfill, store, tmp_path):
    """Rows 2 and 80 share an id (different chunks: 50 rows each); rows 3 and 4 share one with the same content."""
    lines = [f"p{n}@example.com,Ordered,2024-03-01T10:00:00Z,E-{n}" for n in range(100)]
    lines[78] = "other@example.com,Refunded,2024-03-02T10:00:00Z,E-0"        # row 80, chunk 1
    lines[2] = lines[1]                                                      # row 4 = row 3, as written
    path = write(tmp_path, "reused.csv", "email,event_name,time,event_id\n" + "\n".join(lines) + "\n")
    report = _json(backfill("import", str(path), "--create-people", "--wait", "--json"))
    assert counted_once(report) and (report["imported"], report["duplicates"], report["warnings"]) == (98, 2, 1)
    warned = list(csv.DictReader(io.StringIO(_errors_file(backfill, report["import_id"], "warnings"))))
    # chunks commit in parallel: the row committed first holds the id, the other is the duplicate
    [row] = [r["_row"] for r in warned]
    assert row in ("2", "80")
    first = "80" if row == "2" else "2"
    assert "event_id_reused" in warned[0]["_warnings"] and f"first used on row {first}" in warned[0]["_warnings"]
    assert store.r.exists(f"bf:imp:{report['import_id']}:ids") == 0  # the memory goes with the report


def test_headers_as_people_write_them_and_map_and_skip_for_events(backfill, tmp_path):
    path = write(tmp_path, "sheet.csv", "Email Address,Event Name,Date,Notes,Internal\n"
                                        "ann@example.com,Signed up,2024-03-01,hello,x\n")
    report = _json(backfill("import", str(path), "--create-people", "--skip", "Internal", "--map", "Notes=comment",
                            "--wait", "--json"))
    assert report["imported"] == 1
    shown = backfill("inspect", str(path), "--skip", "Internal", "--json")
    roles = {c["name"]: c["role"] for c in orjson.loads(shown.stdout)["columns"]}
    assert roles == {"Email Address": "person", "Event Name": "name", "Date": "time", "Notes": "property",
                     "Internal": "dropped"}
    named = write(tmp_path, "named.csv", "email,event_name,name\nann@example.com,Ordered,Blue shirt\n")
    text = backfill("inspect", str(named)).stdout.decode()
    assert "'name' is imported as a property: 'event_name' is the event name" in text


def test_local_dates_with_date_format(backfill, store, tmp_path):
    path = write(tmp_path, "us.csv", "email,event_name,time\nann@example.com,Ordered,10/18/2010 14:30\n")
    refused = _json(backfill("import", str(path), "--create-people", "--wait", "--json"))
    assert refused["errors"] == 1
    assert "--date-format '%m/%d/%Y %H:%M'" in _errors_file(backfill, refused["import_id"])
    report = _json(backfill("import", str(path), "--create-people", "--date-format", "%m/%d/%Y %H:%M",
                            "--wait", "--json"))
    assert report["imported"] == 1
    [event] = store.events.read(report["import_id"])
    assert event["timestamp"] == 1287412200
    bad = backfill("import", str(path), "--date-format", "mm/dd/yyyy")
    assert bad.returncode == 2 and b"strptime" in bad.stderr


def test_tab_delimiter_by_name_escape_or_character(backfill, tmp_path):
    path = write(tmp_path, "tabs.tsv", "email\tevent_name\tnote\nann@example.com\tOrdered\ta,b\n")
    for given in ("tab", "\\t", "\t"):
        shown = backfill("inspect", str(path), "--delimiter", given, "--json")
        assert shown.returncode == 0 and orjson.loads(shown.stdout)["delimiter"] == "\t", shown.stderr
    report = _json(backfill("import", str(path), "--delimiter", "tab", "--create-people", "--wait", "--json"))
    assert report["imported"] == 1 and report["delimiter"] == "\t"
    assert backfill("inspect", str(path), "--delimiter", "ab").returncode == 2


def test_damaged_gzip_files_fail_the_import_with_a_message(backfill, tmp_path):
    whole = gzip.compress(("email,event_name\n" + "a@b.co,x\n" * 50_000).encode())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    done = backfill("import", str(cut), "--wait")
    assert done.returncode == 1 and b"damaged gzip file" in done.stderr and b"Traceback" not in done.stderr
    assert b"Aborted" not in done.stderr


def test_semicolon_file_errors_keep_the_delimiter_and_every_extra_cell(backfill, tmp_path):
    path = write(tmp_path, "de.csv", "email;event_name;address\n"
                                     "ann@example.com;Bestellt;Hauptstr. 5\n"
                                     "bob@example.com;Bestellt;Ring 1;Köln;50667\n", encoding="cp1252")
    report = _json(backfill("import", str(path), "--create-people", "--wait", "--json"))
    assert (report["imported"], report["errors"]) == (1, 1)
    text = _errors_file(backfill, report["import_id"])
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0] == ["email", "event_name", "address", "", "", "_row", "_errors"]
    assert rows[1][:6] == ["bob@example.com", "Bestellt", "Ring 1", "Köln", "50667", "3"]
    assert "too_many_cells" in rows[1][6]


def test_the_errors_file_comes_out_in_row_order_across_chunks(backfill, tmp_path):
    lines = [f"p{n}@example.com,Ordered,{'soon' if n % 7 == 0 else ''}" for n in range(400)]
    path = write(tmp_path, "many.csv", "email,event_name,time\n" + "\n".join(lines) + "\n")
    report = _json(backfill("import", str(path), "--create-people", "--wait", "--json"))
    rows = [int(r["_row"]) for r in csv.DictReader(io.StringIO(_errors_file(backfill, report["import_id"])))]
    assert rows == [n + 2 for n in range(400) if n % 7 == 0] and report["chunks"] == 8


def test_people_show_lines_up_long_attribute_names(backfill, tmp_path):
    path = write(tmp_path, "people.csv", "id,a_rather_long_attribute_name_here,plan\nlong1,yes,pro\n")
    assert backfill("import", str(path), "--type", "people", "--wait").returncode == 0
    lines = backfill("people", "show", "long1").stdout.decode().splitlines()
    long_line = next(line for line in lines if "a_rather_long" in line)
    plan_line = next(line for line in lines if line.strip().startswith("plan"))
    assert long_line.index("yes") == plan_line.index("pro") > len("  a_rather_long_attribute_name_here")


def test_a_loose_campaign_triggers_other_spellings_and_the_dry_run_lists_them(backfill, store, tmp_path):
    assert backfill("campaigns", "add", "thanks", "--event", "Completes checkout", "--match", "loose").returncode == 0
    path = write(tmp_path, "spellings.csv", "email,event_name\nann@example.com,completes_checkout\n"
                                            "bob@example.com,Completes checkout\ncid@example.com,COMPLETES CHECKOUT\n"
                                            "dan@example.com,completes checkouts\n")
    dry = _json(backfill("import", str(path), "--create-people", "--trigger", "--dry-run", "--wait", "--json"))
    assert dry["triggers"]["sent_now"] == 3 and dry["triggers"]["no_campaign"] == 1
    warned = list(csv.DictReader(io.StringIO(_errors_file(backfill, dry["import_id"], "warnings"))))
    assert [r["_row"] for r in warned] == ["2", "4"] and all("loose_match" in r["_warnings"] for r in warned)
    real = _json(backfill("import", str(path), "--create-people", "--trigger", "--wait", "--json"))
    assert real["triggers"]["sent_now"] == 3 and len(store.triggers.deliveries()) == 3


def test_ctrl_c_while_standard_input_is_copied_leaves_no_spool_file(redis_url, tmp_path):
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    feeder = subprocess.Popen([BACKFILL, "import", "-"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "TMPDIR": str(spool_dir)})
    feeder.stdin.write(b"email,event_name\n" + b"a@b.co,x\n" * 10_000)
    feeder.stdin.flush()
    wait_until(lambda: list(spool_dir.glob("backfill-stdin-*")), 20, "the copy of standard input started")
    feeder.send_signal(signal.SIGINT)
    feeder.wait(timeout=20)
    feeder.stdin.close()
    assert list(spool_dir.glob("backfill-stdin-*")) == []
    assert b"Traceback" not in feeder.stderr.read()


def test_waiting_survives_a_redis_restart(tmp_path):
    """The import's report lands while Redis was down for a moment: wait() keeps going and returns it."""
    from producers.api import ImportHandle
    from worker.context import Context
    from worker.settings import get_settings
    from worker.store import Store, connect
    from worker.store.embedded import free_port, start_private

    port = free_port()
    server, url = start_private(tmp_path / "redis", port=port, aof=True)
    st = Store(connect(url))
    st.r.hset("bf:imp:restart", mapping={"status": "running", "source": "x.csv"})
    handle = ImportHandle("restart", Context(get_settings(), st, url))  # this test's own Redis, not the session's
    reads: list[int] = []
    watch = st.guard.watch

    def counted():  # each try of the waiter counted (the first thing it asks Redis, up or down)
        reads.append(1)
        return watch()

    st.guard.watch = counted
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(handle.wait(timeout=60, poll_s=0.05)))
    waiter.start()
    try:
        wait_until(lambda: len(reads) >= 2, 10, "the waiter reading the import")
        server.kill()
        server.wait()
        gone = len(reads)
        # a read that failed, and another after it: the waiter keeps trying while Redis is away
        wait_until(lambda: len(reads) >= gone + 2, 10, "the waiter trying again after a failed read")
        assert waiter.is_alive() and not got
        server, _ = start_private(tmp_path / "redis", port=port, aof=True)
        st.r.hset("bf:imp:restart", "report", orjson.dumps({"status": "completed"}))
        waiter.join(timeout=30)
    finally:
        server.kill()
        server.wait()
    assert got == [{"status": "completed"}]


def test_every_file_in_this_module_was_counted_once(store, workers, tmp_path):
    """A sanity check on the pieces above: a mixed real-world file counts every row once."""
    text = ("Email Address,Event Name,Date,Order ID\n"
            "\u200bann@example.com,Ordered,20240301,'7985351721238\n"
            "mailto:bob@example.com,Ordered,2024-03-01,1\n"
            "cid@example.com,Ordered,45356.58,2\n"
            "dan@example.com,Ordered,1709287200,3\n")
    report = run_import(write(tmp_path, "mixed.csv", text), create_people=True)
    assert counted_once(report) and (report["imported"], report["errors"], report["warnings"]) == (2, 2, 1)


# Excel for Mac's "CSV (Macintosh)": Mac Roman, lines ending in CR alone.
MAC_TEXT = ("email,event_name,customer,city,note\r"
            "anna@example.ch,Bestellung,Anna Müller,Zürich,Straße 5\r"
            "jose@example.es,Pedido,Señor José,Madrid,Café con leche\r")


def test_a_mac_roman_file_is_refused_naming_mac_roman_and_imported_exactly_with_it(backfill, store, tmp_path):
    path = write(tmp_path, "mac.csv", MAC_TEXT, encoding="mac_roman")
    for refused in (backfill("import", str(path), "--create-people", "--wait"), backfill("inspect", str(path))):
        assert refused.returncode == 1 and b"Traceback" not in refused.stderr, refused.stderr
        assert "'MŸller'" in refused.stderr.decode() and "--encoding mac_roman" in refused.stderr.decode()
    report = _json(backfill("import", str(path), "--encoding", "mac_roman", "--create-people", "--wait", "--json"))
    assert counted_once(report) and (report["imported"], report["errors"], report["encoding"]) == (2, 0, "mac_roman")
    stored = {e["person"]["email"]: (e["name"], e["data"]) for e in store.events.read(report["import_id"])}
    assert stored == {
        "anna@example.ch": ("Bestellung", {"customer": "Anna Müller", "city": "Zürich", "note": "Straße 5"}),
        "jose@example.es": ("Pedido", {"customer": "Señor José", "city": "Madrid", "note": "Café con leche"}),
    }


def test_a_cp1252_file_with_euros_and_smart_quotes_is_still_read_as_cp1252(backfill, store, tmp_path):
    path = write(tmp_path, "win.csv", "email,event_name,note\r\n"
                                      "ann@example.com,Commandé,“Premium” plan – 10 € – it’s Renée’s\r\n",
                 encoding="cp1252")
    report = _json(backfill("import", str(path), "--create-people", "--wait", "--json"))
    assert (report["imported"], report["errors"], report["encoding"]) == (1, 0, "cp1252")
    [event] = store.events.read(report["import_id"])
    assert (event["name"], event["data"]) == ("Commandé", {"note": "“Premium” plan – 10 € – it’s Renée’s"})


def test_a_final_ctrl_z_is_the_end_of_the_file_not_an_error_row(backfill, tmp_path):
    body = b"email,event_name\r\n" + b"\r\n".join(b"p%d@example.com,Ordered" % n for n in range(120))
    for name, data in (("crlf.csv", body + b"\r\n\x1a"), ("last.csv", body + b"\x1a"),
                       ("crlf.csv.gz", gzip.compress(body + b"\r\n\x1a")),
                       ("last.csv.gz", gzip.compress(body + b"\x1a"))):
        path = tmp_path / name
        path.write_bytes(data)
        report = _json(backfill("import", str(path), "--create-people", "--wait", "--json"))
        assert counted_once(report) and (report["rows"], report["imported"] + report["duplicates"],
                                         report["errors"]) == (120, 120, 0), name
