"""Local times around the clock changes, through the real CLI and real workers.

The files are a Salesforce report (Activities, and Contacts for people) exported by a user whose
time zone is America/New_York: Salesforce writes report times in the user's zone and locale
(``3/10/2024 2:30 AM``), without an offset. On 2024-03-10 New York's clocks went from 02:00 to 03:00,
on 2024-11-03 from 02:00 back to 01:00. The same activities as a spreadsheet saves them once the
column is formatted yyyy-mm-dd hh:mm:ss (what the README asks of Excel users) are read a column
at a time, without --date-format.
"""
from __future__ import annotations

import csv
import io
import subprocess

import orjson

from .helpers import counted_once, write

ZONE = ("--timezone", "America/New_York")
SALESFORCE_TIME = ("--date-format", "%m/%d/%Y %I:%M %p")
ACTIVITIES = ("--map", "Subject=event_name", "--map", "Created Date=time")
#: rows 2-6: before the spring change, in its gap, the real 03:30 (the instant the gap row was read
#: as), in the autumn's repeated hour, after it
REPORT = [("ann@example.com", "Call", "3/10/2024 1:45 AM"),
          ("ann@example.com", "Call", "3/10/2024 2:30 AM"),
          ("ann@example.com", "Call", "3/10/2024 3:30 AM"),
          ("bob@example.com", "Meeting", "11/3/2024 1:30 AM"),
          ("bob@example.com", "Meeting", "11/3/2024 2:15 AM")]
SPREADSHEET = ["2024-03-10 01:45:00", "2024-03-10 02:30:00", "2024-03-10 03:30:00", "2024-11-03 01:30:00",
               "2024-11-03 02:15:00"]
# 2024-03-10 06:45Z, 07:30Z; 2024-11-03 05:30Z (EDT) or 06:30Z (EST), 07:15Z
AT_0145, AT_0330, FIRST_0130, SECOND_0130, AT_0215 = 1710053100, 1710055800, 1730611800, 1730615400, 1730618100


def _csv(header: list[str], rows: list[tuple[str, ...]]) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows([header, *rows])
    return out.getvalue()


def _json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode in (0, 4), done.stderr.decode()
    return orjson.loads(done.stdout)


def _errors(backfill, import_id: str) -> dict[str, str]:
    done = backfill("errors", import_id)
    assert done.returncode == 0, done.stderr
    return {r["_row"]: r["_errors"] for r in csv.DictReader(io.StringIO(done.stdout.decode("utf-8").lstrip("\ufeff")))}


def _times(store, import_id: str) -> dict[int, float]:
    return {e["row"]: e["timestamp"] for e in store.events.read(import_id)}


def test_a_salesforce_report_in_new_york_time_loses_no_event_at_the_clock_changes(backfill, store, tmp_path):
    path = write(tmp_path, "activities.csv", _csv(["Email", "Subject", "Created Date"], REPORT))
    report = _json(backfill("import", str(path), *ACTIVITIES, *ZONE, *SALESFORCE_TIME, "--create-people",
                            "--wait", "--json"))
    assert counted_once(report) and (report["imported"], report["duplicates"], report["errors"]) == (3, 0, 2)
    # the real 03:30 is imported, not dropped as a duplicate of a 02:30 read as its instant
    assert _times(store, report["import_id"]) == {2: AT_0145, 4: AT_0330, 6: AT_0215}
    errors = _errors(backfill, report["import_id"])
    assert errors["3"] == ("invalid_time: '3/10/2024 2:30 AM' does not exist in America/New_York: clocks went "
                           "forward from 02:00 to 03:00 (EST to EDT) on 2024-03-10 (column 'Created Date')")
    assert errors["5"] == ("ambiguous_time: '11/3/2024 1:30 AM' happened twice in America/New_York: clocks went back "
                           "from 02:00 to 01:00 (EDT to EST) on 2024-11-03, so it is 2024-11-03T05:30:00.000Z (EDT) or "
                           "2024-11-03T06:30:00.000Z (EST); pass --dst earlier or --dst later to choose "
                           "(column 'Created Date')")

    repeated = tmp_path / "repeated.csv"
    repeated.write_text(_csv(["Email", "Subject", "Created Date"], REPORT[3:4]), newline="")
    for dst, instant in (("earlier", FIRST_0130), ("later", SECOND_0130)):
        chosen = _json(backfill("import", str(repeated), *ACTIVITIES, *ZONE, *SALESFORCE_TIME, "--dst", dst,
                                "--create-people", "--wait", "--json"))
        assert (chosen["imported"], chosen["errors"], chosen["dst"]) == (1, 0, dst)
        assert _times(store, chosen["import_id"]) == {2: instant}


def test_the_same_activities_saved_as_iso_local_times(backfill, store, tmp_path):
    rows = [(email, name, time) for (email, name, _), time in zip(REPORT, SPREADSHEET)]
    path = write(tmp_path, "activities-iso.csv", _csv(["Email", "Subject", "Created Date"], rows))
    report = _json(backfill("import", str(path), *ACTIVITIES, *ZONE, "--create-people", "--wait", "--json"))
    assert counted_once(report) and (report["imported"], report["duplicates"], report["errors"]) == (3, 0, 2)
    assert _times(store, report["import_id"]) == {2: AT_0145, 4: AT_0330, 6: AT_0215}
    errors = _errors(backfill, report["import_id"])
    assert "invalid_time: '2024-03-10 02:30:00' does not exist in America/New_York" in errors["3"]
    assert "ambiguous_time: '2024-11-03 01:30:00' happened twice" in errors["5"]
    chosen = _json(backfill("import", str(path), *ACTIVITIES, *ZONE, "--dst", "earlier", "--create-people",
                            "--wait", "--json"))
    # rows 2, 4 and 6 are the same events again; row 5 is new, at its first instant (EDT)
    assert (chosen["imported"], chosen["duplicates"], chosen["errors"]) == (1, 3, 1)
    assert _times(store, chosen["import_id"]) == {5: FIRST_0130}


def test_a_bad_dst_value_is_refused_before_anything_is_read(backfill, tmp_path):
    path = write(tmp_path, "activities.csv", _csv(["Email", "Subject", "Created Date"], REPORT))
    done = backfill("import", str(path), *ACTIVITIES, *ZONE, "--dst", "first")
    assert done.returncode == 2 and b"'first' is not one of 'earlier', 'later'" in done.stderr


def test_a_salesforce_contacts_report_reads_created_at_in_new_york_time(backfill, tmp_path):
    contacts = [("ann@example.com", "Ann", "Lee", "3/10/2024 3:30 AM"),
                ("bob@example.com", "Bob", "Roy", "3/10/2024 2:30 AM"),
                ("cy@example.com", "Cy", "Fox", "11/3/2024 1:30 AM")]
    path = write(tmp_path, "contacts.csv", _csv(["Email", "First Name", "Last Name", "Created Date"], contacts))
    options = ("--type", "people", "--map", "Created Date=created_at", *ZONE, *SALESFORCE_TIME, "--wait", "--json")
    report = _json(backfill("import", str(path), *options))
    assert counted_once(report) and (report["imported"], report["errors"]) == (1, 2)
    errors = _errors(backfill, report["import_id"])
    assert errors["3"] == ("invalid_time: '3/10/2024 2:30 AM' does not exist in America/New_York: clocks went "
                           "forward from 02:00 to 03:00 (EST to EDT) on 2024-03-10 (column 'Created Date')")
    assert errors["4"].startswith("ambiguous_time: '11/3/2024 1:30 AM' happened twice in America/New_York")
    assert _created_at(backfill, "ann@example.com") == AT_0330
    assert backfill("people", "show", "bob@example.com").returncode == 1  # not created with a wrong time

    again = _json(backfill("import", str(path), *options, "--dst", "later"))
    assert (again["imported"], again["errors"], again["dst"]) == (2, 1, "later")
    assert _created_at(backfill, "cy@example.com") == SECOND_0130


def _created_at(backfill, who: str) -> int:
    done = backfill("people", "show", who, "--json")
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)["created_at"]
