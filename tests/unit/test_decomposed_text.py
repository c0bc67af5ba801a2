"""Text written decomposed (NFD), as macOS writes accents: identifiers and names are read composed (NFC).

The files are a sheet some of whose cells were pasted from a Mac (a Finder file name, a Numbers
cell) and the rest typed in Google Sheets, exported as CSV: the same person, event name and event
id come composed in some rows and decomposed in others. They look the same and are not equal, so
without normalising they would be two people, two event names, two dedupe keys. Property values are
kept byte for byte as written. No Redis: the producer's reading and the pure cores.
"""
from __future__ import annotations

import unicodedata
from datetime import UTC

from producers.source import Source
from producers.split import chunks, scan
from worker.cells import composed
from worker.events import chunk as core
from worker.events import rules
from worker.events.rows import dedupe_key
from worker.people.columns import plan_people_columns
from worker.people.rows import validate_people
from worker.segment.plan import plan as segment_plan
from worker.spec import ImportSpec

NOW = 1_735_000_000.0
NFC, NFD = "Ren\u00e9e@example.com", "Rene\u0301e@example.com"      # one e-mail, two ways
CAFE, CAFE_NFD = "Caf\u00e9 visit", "Cafe\u0301 visit"            # one event name
ID, ID_NFD = "caf\u00e9-1", "cafe\u0301-1"                         # one event id
CITY_NFD = "Orle\u0301ans"                                         # a property value, pasted from a Mac

# Rows 2-3: one event (the id), written twice. Rows 4-5: one event (person + name + time + properties).
# Row 6: a decomposed name with a zero-width space too. Row 7: all composed, another event.
MACOS_SHEET = (
    "email,event_name,time,event_id,city\n"
    f"{NFC},{CAFE},2024-12-01T10:00:00Z,{ID},{CITY_NFD}\n"
    f"{NFD},{CAFE_NFD},2024-12-01T10:00:00Z,{ID_NFD},{CITY_NFD}\n"
    f"{NFD},{CAFE},2024-12-02T10:00:00Z,,{CITY_NFD}\n"
    f"{NFC},{CAFE_NFD},2024-12-02T10:00:00Z,,{CITY_NFD}\n"
    f"{NFD},Cafe\u0301\u200b visit,2024-12-03T10:00:00Z,,Orl\u00e9ans\n"
    f"{NFC},{CAFE},2024-12-04T10:00:00Z,,Orl\u00e9ans\n"
)


def _import(tmp_path, text: str, **options):
    """(validated, assembled) of a file read by the producer, through the production core."""
    path = tmp_path / "macos.csv"
    path.write_bytes(text.encode("utf-8"))
    source = Source.open(path)
    plan = scan(source)
    [chunk] = list(chunks(source, plan, 1000))
    source.close()
    spec = ImportSpec(import_id="mac", columns=plan.columns, identifier=plan.identifier, create_people=True,
                      **options)
    validated = core.validate(spec, chunk.rows, chunk.row_numbers, NOW, 300)
    campaigns = options.get("trigger") and rules.by_event([rules.Campaign("coffee", CAFE_NFD, 0)])
    assembled = core.assemble(spec, validated, chunk.rows, chunk.row_numbers, {}, campaigns or rules.NO_CAMPAIGNS,
                              NOW, 300)
    return validated, assembled


def _codes(warnings):
    return {row: [(p.column, p.code) for p in problems] for row, _, problems in warnings}


def test_a_macos_sheet_is_one_person_one_name_and_its_repeats_are_duplicates(tmp_path):
    validated, assembled = _import(tmp_path, MACOS_SHEET)
    events = validated.events
    assert not validated.errors and len(events) == 6
    assert {e.person for e in events} == {NFC} and {e.person_key for e in events} == {NFC.lower()}
    assert {e.name for e in events} == {CAFE} and events[0].event_id == events[1].event_id == ID
    assert assembled.create == [(NFC.lower(), NFC)]  # one person
    keys = [dedupe_key(e) for e in events]
    assert keys[0] == keys[1] and keys[2] == keys[3] and len(set(keys)) == 4  # rows 3 and 5 are duplicates
    assert bytes(assembled.keys) == b"".join(keys)
    # the same id for the same event: no event_id_reused
    assert not any(b"event_id_reused" in w for w in assembled.warnings)


def test_each_normalised_cell_is_warned_and_an_invisible_character_too(tmp_path):
    validated, _ = _import(tmp_path, MACOS_SHEET)
    assert _codes(validated.warnings) == {
        3: [("email", "unicode_normalized"), ("event_name", "unicode_normalized"), ("event_id", "unicode_normalized")],
        4: [("email", "unicode_normalized")],
        5: [("event_name", "unicode_normalized")],
        6: [("event_name", "invisible_characters"), ("email", "unicode_normalized"),
            ("event_name", "unicode_normalized")],
    }
    message = validated.warnings[0][2][0].message
    assert "U+0301 COMBINING ACUTE ACCENT" in message and "composed form (NFC)" in message


def test_property_values_are_kept_as_written(tmp_path):
    validated, assembled = _import(tmp_path, MACOS_SHEET)
    cities = [e.data["city"] for e in validated.events]
    assert cities == [CITY_NFD] * 4 + ["Orl\u00e9ans"] * 2
    assert CITY_NFD.encode() in bytes(assembled.bodies) and not unicodedata.is_normalized("NFC", cities[0])


def test_a_campaign_defined_decomposed_is_triggered_by_the_composed_name(tmp_path):
    _, assembled = _import(tmp_path, MACOS_SHEET.replace("2024-12-04T10:00:00Z", ""), trigger=True,
                           trigger_window_s=None)
    # the last row has no time: "now", sent now by the campaign written decomposed
    assert assembled.outcomes[-1] != rules.NO_CAMPAIGN and b"sent_now" in assembled.outcomes[-1]
    index = rules.by_event([rules.Campaign("coffee", CAFE_NFD, 0), rules.Campaign("cafe\u0301", "cafe\u0301_visit", 0,
                                                                                 "loose")])
    matched, loosely = index.match(CAFE)
    assert [c.name for c in matched] == ["coffee", "caf\u00e9"] and [c.name for c in loosely] == ["caf\u00e9"]
    assert rules.Campaign("cafe\u0301", CAFE_NFD, 0) == rules.Campaign("caf\u00e9", CAFE, 0)  # one campaign


def test_composed_text_is_kept_and_a_singleton_is_composed_too():
    notes: list = []
    assert composed("Stra\u00dfe \u6771\u4eac", "x", 2, notes) == "Stra\u00dfe \u6771\u4eac" and notes == []
    assert composed("\u212b", "x", 2, notes) == "\u00c5" and "U+212B ANGSTROM SIGN" in notes[0].message


# People: a CRM's contacts exported on a Mac ------------------------------------------------------------

def test_a_people_file_names_one_person_whatever_the_form(tmp_path):
    header = ["Customer ID", "Email", "First Name", "City"]
    columns = plan_people_columns(header, mapping={"customer id": "id"})
    rows = [["jos\u00e9-7", "jos\u00e9@example.com", "Jos\u00e9", "Orl\u00e9ans"],
            ["jose\u0301-7", "Jose\u0301@example.com", "Jose\u0301", "Orle\u0301ans"],
            ["jose\u0301\u200b-7", "jos\u00e9@example.com", "x", "y"]]
    out = validate_people(rows, [2, 3, 4], columns, tz=UTC, clear_empty=False)
    assert not out.errors
    assert {(r.id, r.email_key) for r in out.rows} == {("jos\u00e9-7", "jos\u00e9@example.com")}
    assert out.rows[1].set == {"First Name": "Jose\u0301", "City": "Orle\u0301ans"}  # attributes as written
    assert _codes(out.warnings) == {3: [("Customer ID", "unicode_normalized"), ("Email", "unicode_normalized")],
                                    4: [("Customer ID", "invisible_characters"),
                                        ("Customer ID", "unicode_normalized")]}


# Segment messages (archives and the HTTP tracking endpoints) --------------------------------------------

def test_segment_identifiers_and_names_are_read_composed():
    lines = [
        '{"type":"identify","userId":"jose\\u0301","traits":{"email":"Jose\\u0301@example.com",'
        '"city":"Orle\\u0301ans"},"timestamp":"2024-12-01T10:00:00Z"}',
        '{"type":"track","userId":"jose\\u0301","event":"Cafe\\u0301 visit","messageId":"m-e\\u0301",'
        '"properties":{"city":"Orle\\u0301ans"},"timestamp":"2024-12-01T10:00:00Z"}',
        '{"type":"track","anonymousId":"anon-e\\u0301","event":"Caf\\u00e9 visit","timestamp":"2024-12-01T10:00:00Z"}',
        '{"type":"alias","previousId":"anon-e\\u0301","userId":"jos\\u00e9"}',
    ]
    out = segment_plan(lines, [1, 2, 3, 4], tz=UTC, now=NOW, clock_skew_s=300)
    assert not out.errors
    identify = out.ops[0]
    assert (identify.id, identify.email, identify.set) == ("jos\u00e9", "Jos\u00e9@example.com",
                                                          {"city": "Orle\u0301ans"})
    [event] = out.events
    assert (event.person, event.name, event.event_id) == ("jos\u00e9", CAFE, "m-\u00e9")
    assert event.data == {"city": "Orle\u0301ans"}
    [held] = out.anonymous
    assert held.person == "anon-\u00e9" and held.name == CAFE
    assert [(link.anonymous_id, link.user_id) for link in out.links] == [("anon-\u00e9", "jos\u00e9")]
    assert _codes(out.warnings) == {1: [("userId", "unicode_normalized"), ("traits.email", "unicode_normalized")],
                                    2: [("messageId", "unicode_normalized"), ("event", "unicode_normalized"),
                                        ("userId", "unicode_normalized")],
                                    3: [("anonymousId", "unicode_normalized")],
                                    4: [("previousId", "unicode_normalized")]}
