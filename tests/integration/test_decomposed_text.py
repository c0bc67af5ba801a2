"""Text written decomposed (NFD, as macOS writes accents) through the real CLI and real workers: people,
their events, a campaign and a Segment archive, with the same names typed composed (NFC) elsewhere.
Identifiers and names are stored composed; property values and attributes as written."""
from __future__ import annotations

import csv
import io

import orjson

from worker import keys

from .helpers import counted_once, write

E_NFC, E_NFD = "ren\u00e9e@example.com", "rene\u0301e@example.com"
ID_NFC, ID_NFD = "jos\u00e9-7", "jose\u0301-7"
CAFE, CAFE_NFD = "Caf\u00e9 visit", "Cafe\u0301 visit"
CITY_NFD = "Orle\u0301ans"


def _report(done) -> dict:
    assert done.returncode in (0, 4), done.stderr.decode()
    return orjson.loads(done.stdout)


def _warned(backfill, import_id: str) -> dict[str, str]:
    done = backfill("warnings", import_id)
    assert done.returncode == 0, done.stderr
    return {r["_row"]: r["_warnings"] for r in csv.DictReader(io.StringIO(done.stdout.decode().lstrip("\ufeff")))}


def test_a_macos_people_file_then_its_events_are_one_person_one_name(backfill, store, tmp_path):
    # A CRM's contacts, some pasted from a Mac: row 3 is row 2's person written decomposed.
    people = write(tmp_path, "contacts.csv", "id,email,city\n"
                                             f"{ID_NFC},{E_NFC},Orl\u00e9ans\n"
                                             f"{ID_NFD},{E_NFD},{CITY_NFD}\n")
    report = _report(backfill("import", str(people), "--type", "people", "--wait", "--json"))
    assert (report["imported"], report["people_created"], report["warnings"], report["errors"]) == (2, 1, 1, 0)
    warned = _warned(backfill, report["import_id"])  # one row, its cells' warnings and the directory's
    assert list(warned) == ["3"] and warned["3"].count("unicode_normalized") == 2 and "duplicate_email" in warned["3"]
    assert list(store.r.hkeys(keys.PEOPLE_BY_ID)) == [ID_NFC.encode()]
    assert list(store.r.hkeys(keys.PEOPLE_BY_EMAIL)) == [E_NFC.encode()]
    person = store.people.find(ID_NFC, "id")
    assert person["a:city"] == CITY_NFD  # the last row's attribute, as written
    shown = backfill("people", "show", E_NFD, "--json")  # looked up as pasted from a Mac
    assert shown.returncode == 0 and orjson.loads(shown.stdout)["id"] == ID_NFC

    # Their events: the e-mail, the name and the id come composed in some rows and decomposed in others.
    events = write(tmp_path, "events.csv", "email,event_name,time,event_id,city\n"
                                           f"{E_NFC},{CAFE},2024-12-01T10:00:00Z,caf\u00e9-1,{CITY_NFD}\n"
                                           f"{E_NFD},{CAFE_NFD},2024-12-01T10:00:00Z,cafe\u0301-1,{CITY_NFD}\n"
                                           f"{E_NFD},{CAFE},2024-12-02T10:00:00Z,,{CITY_NFD}\n"
                                           f"{E_NFC},{CAFE_NFD},2024-12-02T10:00:00Z,,{CITY_NFD}\n"
                                           f"{E_NFD},Cafe\u0301\u200b visit,2024-12-03T10:00:00Z,,x\n")
    report = _report(backfill("import", str(events), "--wait", "--json"))  # no --create-people: all are found
    assert counted_once(report)
    assert (report["imported"], report["duplicates"], report["errors"], report["warnings"]) == (3, 2, 0, 4)
    stored = list(store.events.read(report["import_id"]))
    assert [(e["row"], e["person"], e["name"]) for e in stored] == [(2, {"email": E_NFC}, CAFE),
                                                                  (4, {"email": E_NFC}, CAFE),
                                                                  (6, {"email": E_NFC}, CAFE)]
    assert stored[0]["id"] == "caf\u00e9-1" and stored[0]["data"]["city"] == CITY_NFD  # the property as written
    warned = _warned(backfill, report["import_id"])
    assert sorted(warned) == ["3", "4", "5", "6"]
    assert "unicode_normalized" in warned["3"] and "U+0301 COMBINING ACUTE ACCENT" in warned["3"]
    assert "invisible_characters" in warned["6"] and "unicode_normalized" in warned["6"]


def test_a_campaign_defined_decomposed_is_triggered_by_the_composed_name(backfill, store, tmp_path):
    added = backfill("campaigns", "add", "caf\u00e9 follow-up", "--event", CAFE_NFD)
    assert added.returncode == 0 and "composed form (NFC)" in added.stdout.decode()
    path = write(tmp_path, "visits.csv", f"email,event_name\n{E_NFC},{CAFE}\n")
    report = _report(backfill("import", str(path), "--create-people", "--trigger", "--wait", "--json"))
    assert report["triggers"]["sent_now"] == 1
    [delivery] = store.triggers.deliveries()
    assert (delivery["campaign"], delivery["event"]) == ("caf\u00e9 follow-up", CAFE)
    assert backfill("campaigns", "remove", "cafe\u0301 follow-up").returncode == 0  # the same name


def test_a_segment_archive_names_one_person_and_dedupes_by_the_composed_message_id(backfill, store, tmp_path):
    lines = [
        {"type": "identify", "userId": ID_NFD, "traits": {"email": E_NFD, "city": CITY_NFD}},
        {"type": "track", "userId": ID_NFC, "event": CAFE_NFD, "messageId": "m-\u00e9",
         "properties": {"city": CITY_NFD}, "timestamp": "2024-12-01T10:00:00Z"},
        {"type": "track", "userId": ID_NFD, "event": CAFE, "messageId": "m-e\u0301",
         "properties": {"city": CITY_NFD}, "timestamp": "2024-12-01T10:00:00Z"},
    ]
    path = write(tmp_path, "archive.ndjson", "".join(orjson.dumps(line).decode() + "\n" for line in lines))
    report = _report(backfill("import", str(path), "--wait", "--json"))
    assert counted_once(report) and (report["imported"], report["duplicates"], report["errors"]) == (2, 1, 0)
    assert store.r.hkeys(keys.PEOPLE_BY_ID) == [ID_NFC.encode()]
    assert store.r.hkeys(keys.PEOPLE_BY_EMAIL) == [E_NFC.encode()]
    [event] = store.events.read(report["import_id"])
    assert (event["person"], event["name"], event["id"], event["data"]) == ({"id": ID_NFC}, CAFE, "m-\u00e9",
                                                                           {"city": CITY_NFD})
