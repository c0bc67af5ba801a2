"""Headers of other tools' exports, and the names a header may give: which column is the time, the
event's name, the person, and how long a property or attribute name may be.

Files are shaped as the exports are written: GA4's BigQuery export flattened to CSV (``event_date``
beside ``event_timestamp`` in microseconds), Amplitude's Export API (``event_type``), Mixpanel's
export (``event``, ``distinct_id``, ``time`` in seconds). No Redis: the producer's scan and the pure core.
"""
from __future__ import annotations

import csv
import io

import orjson
import pytest

from producers.source import Source
from producers.split import scan
from worker.cells import NAME_LIMIT
from worker.errors import FileProblem
from worker.events.dialects import plan_columns
from worker.people.columns import plan_people_columns
from worker.segment.messages import Message, read_message
from worker.timestamps import parse_time


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def scanned(tmp_path, data: bytes, **options):
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    with Source.open(path) as source:
        return scan(source, **options)


def refusal(tmp_path, data: bytes, **options) -> FileProblem:
    with pytest.raises(FileProblem) as caught:
        scanned(tmp_path, data, **options)
    return caught.value


def header_refusal(header: list[str], **options) -> FileProblem:
    with pytest.raises(FileProblem) as caught:
        plan_columns(header, **options)
    return caught.value


# GA4's BigQuery export, one row an event; event_params flattened to a column a key.
GA4_HEADER = ["event_date", "event_timestamp", "event_name", "event_previous_timestamp", "user_pseudo_id", "user_id",
              "event_params.ga_session_id", "event_params.page_location", "event_params.engagement_time_msec",
              "user_first_touch_timestamp", "geo.country", "device.category", "platform"]
GA4_ROWS = [
    ["20240301", "1709287245123456", "page_view", "", "1234567890.1709287000", "u_1001", "1709287000",
     "https://shop.example.com/", "", "1709287000654321", "Germany", "desktop", "WEB"],
    ["20240301", "1709287301987654", "add_to_cart", "1709287245123456", "1234567890.1709287000", "u_1001",
     "1709287000", "https://shop.example.com/p/17", "5120", "1709287000654321", "Germany", "desktop", "WEB"],
    ["20240302", "1709370123000001", "purchase", "", "987654321.1709370000", "u_1002", "1709370000",
     "https://shop.example.com/checkout", "30211", "1709369000000000", "France", "mobile", "WEB"],
]
GA4 = csv_bytes(GA4_HEADER, GA4_ROWS)


# 1. a day-only time column beside a column of full times -------------------------------------------

def test_a_ga4_export_is_refused_naming_the_day_column_and_the_timestamp_column(tmp_path):
    """Otherwise every GA4 event is stored at midnight and its real time is a property."""
    problem = refusal(tmp_path, GA4)
    assert problem.code == "ambiguous_time_column"
    message = str(problem)
    assert "column A 'event_date'" in message and "column B 'event_timestamp'" in message
    assert "20240301" in message and "1709287245123456" in message
    assert "--map 'event_timestamp=time'" in message and "--map 'event_date=time'" in message
    # the other time-named columns are listed too, the event's own first
    assert "'user_first_touch_timestamp'" in message and message.index("'event_timestamp'") < message.index(
        "'user_first_touch_timestamp'")


def test_the_map_the_refusal_gives_settles_it(tmp_path):
    plan = scanned(tmp_path, GA4, mapping={"event_timestamp": "time"})
    columns = plan.columns
    assert columns.header[columns.time] == "event_timestamp" and columns.header[columns.name] == "event_name"
    assert columns.header[columns.person] == "user_id" and plan.rows == 3
    assert (0, "event_date") in columns.properties
    assert any("'event_date' is imported as a property" in note for note in columns.notes)
    # the day kept as the time, said by hand; or the finer column kept a property, said by hand
    kept = scanned(tmp_path, GA4, mapping={"event_date": "time"}).columns
    assert kept.header[kept.time] == "event_date"
    assert scanned(tmp_path, GA4, mapping={"event_timestamp": "event_timestamp",
                                           "event_previous_timestamp": "event_previous_timestamp",
                                           "user_first_touch_timestamp": "first_touch"}).columns.time == 0


@pytest.mark.parametrize("day_column, day, fine_column, fine", [
    ("date", "2024-03-01", "created_at", "2024-03-01T10:15:00Z"),
    ("Date", "2024/03/01", "occurredAt", "1709288100123"),          # milliseconds
    ("time", "20240301", "logged_ts", "1709288100"),                 # a "time" column of days, by its values
    ("event_date", "2024-03-01", "Timestamp (UTC)", "2024-03-01 10:15:00"),
    ("date", "2024-03-01T00:00:00Z", "sent_time", "2024-03-01T10:15:00+01:00"),  # midnight is a day
])
def test_any_day_only_time_column_beside_a_finer_time_column_is_refused(tmp_path, day_column, day, fine_column, fine):
    data = csv_bytes(["email", "event_name", day_column, fine_column], [["a@b.co", "Bought", day, fine]] * 2)
    problem = refusal(tmp_path, data)
    assert problem.code == "ambiguous_time_column"
    assert f"--map '{fine_column}=time'" in str(problem) and f"--map '{day_column}=time'" in str(problem)
    assert scanned(tmp_path, data, mapping={fine_column: "time"}).columns.time == 3


@pytest.mark.parametrize("header, row", [
    # Amplitude: the time column holds full times, so do the others
    (["user_id", "event_name", "event_time", "client_event_time"],
     ["u1", "x", "2024-03-01 10:15:00.123000", "2024-03-01 10:15:00.120000"]),
    # the other time-named column holds days too
    (["email", "event_name", "date", "created_at"], ["a@b.co", "x", "2024-03-01", "2024-02-01"]),
    # a number that looks like Unix seconds in a column not named like a time
    (["email", "event_name", "date", "order_number"], ["a@b.co", "x", "2024-03-01", "1709288100"]),
    # a time of day alone is not a time
    (["email", "event_name", "date", "start_time"], ["a@b.co", "x", "2024-03-01", "10:15"]),
])
def test_files_that_are_not_the_case_are_read_as_before(tmp_path, header, row):
    assert scanned(tmp_path, csv_bytes(header, [row])).rows == 1


def test_the_first_values_decide_even_when_the_first_rows_are_empty(tmp_path):
    rows = [["a@b.co", "x", "2024-03-01", ""]] * 5 + [["a@b.co", "x", "2024-03-01", "2024-03-01T10:15:00Z"]]
    assert refusal(tmp_path, csv_bytes(["email", "event_name", "date", "created_at"], rows)).code == \
        "ambiguous_time_column"


# 2. a person column but no event name column --------------------------------------------------------

# Amplitude's Export API, flattened to CSV.
AMPLITUDE_HEADER = ["$insert_id", "amplitude_id", "user_id", "device_id", "event_type", "amplitude_event_type",
                    "event_time", "client_event_time", "server_upload_time", "session_id", "event_properties",
                    "user_properties", "platform", "os_name", "country", "device_type"]
AMPLITUDE = csv_bytes(AMPLITUDE_HEADER, [
    ["5f0a3d9e-1", "481516", "u_1001", "C8F9E604-F01A", "Completed Order", "", "2024-03-01 10:15:00.123000",
     "2024-03-01 10:14:59.870000", "2024-03-01 10:15:01.002000", "1709287000000", '{"total": 59.9}',
     '{"plan": "pro"}', "iOS", "ios", "Germany", "Apple iPhone"],
    ["5f0a3d9e-2", "481517", "u_1002", "D1A2B3C4-0001", "Viewed Page", "", "2024-03-01 11:00:00.000000",
     "2024-03-01 11:00:00.000000", "2024-03-01 11:00:02.000000", "1709290000000", "{}", "{}", "Web", "Chrome",
     "France", "Desktop"],
])


def test_an_amplitude_export_is_refused_as_no_event_name_naming_event_type(tmp_path):
    problem = refusal(tmp_path, AMPLITUDE)
    assert problem.code == "no_event_name_column"
    assert "column E 'event_type' could be the event's name (or 'amplitude_event_type')" in str(problem)
    assert "--map 'event_type=event_name'" in str(problem)
    plan = scanned(tmp_path, AMPLITUDE, mapping={"event_type": "event_name"})
    columns = plan.columns
    assert [columns.header[i] for i in (columns.person, columns.name, columns.time)] == \
        ["user_id", "event_type", "event_time"]
    assert plan.identifier == "id" and parse_time(plan.samples[columns.time][0]) is not None


@pytest.mark.parametrize("header, candidate", [
    (["email", "action", "time"], "action"),
    (["customer_id", "Activity", "date", "amount"], "Activity"),
    (["user_id", "event_category", "type", "created_at"], "type"),
    (["_cio_customer_id", "_cio_timestamp", "event_type"], "event_type"),
])
def test_a_person_column_without_an_event_name_column_names_the_candidates(header, candidate):
    problem = header_refusal(header)
    assert problem.code == "no_event_name_column" and f"--map '{candidate}=event_name'" in str(problem)


def test_a_people_file_given_as_events_says_so():
    problem = header_refusal(["id", "email", "first_name", "plan"])
    assert problem.code == "no_event_name_column" and "--type people" in str(problem)
    assert "id, email, first_name, plan" in str(problem)


# Mixpanel's export (Export API, properties flattened): its person is distinct_id, its time Unix seconds.
MIXPANEL = csv_bytes(["event", "distinct_id", "time", "$insert_id", "mp_lib", "$city", "plan"], [
    ["Signed Up", "u_1001", "1709287245", "a1b2c3", "web", "Berlin", "pro"],
    ["Completed Order", "u_1001", "1709290845", "a1b2c4", "web", "Berlin", "pro"],
])


def test_a_mixpanel_export_is_refused_naming_distinct_id_then_reads_with_the_map(tmp_path):
    """distinct_id holds device ids for people not yet identified: it is the person only when said."""
    problem = refusal(tmp_path, MIXPANEL)
    assert problem.code == "no_person_column" and "--map 'distinct_id=id'" in str(problem)
    plan = scanned(tmp_path, MIXPANEL, mapping={"distinct_id": "id"})
    columns = plan.columns
    assert [columns.header[i] for i in (columns.person, columns.name, columns.time)] == ["distinct_id", "event", "time"]
    assert parse_time(plan.samples[columns.time][0]) == 1709287245


# 3. how long a property or attribute name may be -----------------------------------------------------

# A survey question as a header: 148 characters, 151 bytes of UTF-8.
LONG = "Wie zufrieden waren Sie mit der Beratung, der Lieferung und dem Kundendienst nach Ihrer letzten " \
       "Bestellung im Online-Shop? (1\u201310, h\u00f6her ist besser)."


def test_the_limit_is_bytes_of_utf8():
    assert len(LONG.encode()) == NAME_LIMIT + 1 and len(LONG) < NAME_LIMIT
    plan_columns(["email", "event_name", "x" * NAME_LIMIT])
    plan_columns(["email", "event_name", "é" * (NAME_LIMIT // 2)])
    with pytest.raises(FileProblem, match="152 bytes"):
        plan_columns(["email", "event_name", "é" * (NAME_LIMIT // 2 + 1)])


def test_an_events_property_name_over_the_limit_refuses_the_file_naming_the_column(tmp_path):
    data = csv_bytes(["email", "event_name", "time", LONG], [["a@b.co", "Rated", "2024-03-01T10:00:00Z", "9"]])
    problem = refusal(tmp_path, data)
    assert problem.code == "name_too_long"
    assert str(problem).startswith("column D: the property name 'Wie zufrieden waren Sie mit der Beratung'...")
    assert "151 bytes" in str(problem) and f"at most {NAME_LIMIT} bytes" in str(problem)
    # renamed, left out, or given a role: read
    assert scanned(tmp_path, data, mapping={LONG: "satisfaction"}).columns.properties == ((3, "satisfaction"),)
    assert scanned(tmp_path, data, skip=(LONG,)).columns.properties == ()
    problem = header_refusal(["email", "event_name", "x"], mapping={"x": "y" * (NAME_LIMIT + 1)})
    assert problem.code == "name_too_long" and "column C" in str(problem)
    assert plan_columns(["email", "event_name", LONG], mapping={LONG: "time"}).time == 2


def test_a_people_attribute_name_over_the_limit_refuses_the_file(tmp_path):
    data = csv_bytes(["id", "email", LONG], [["u1", "a@b.co", "9"]])
    problem = refusal(tmp_path, data, people={})
    assert problem.code == "name_too_long" and str(problem).startswith("column C: the attribute name 'Wie")
    assert scanned(tmp_path, data, people={"mapping": {LONG.lower(): "satisfaction"}}).columns.attributes == \
        ((2, "satisfaction"),)


def test_names_templates_cannot_use_are_still_noted():
    name = "Lieferung (Tage)"
    assert "templates must write" in plan_columns(["email", "event_name", name]).notes[0]
    assert "templates must write" in plan_people_columns(["id", name]).notes[0]


def message(**fields) -> str:
    return orjson.dumps(fields).decode()


@pytest.mark.parametrize("fields, field", [
    (dict(type="track", userId="u1", event="Rated", properties={LONG: 9, "ok": 1}), "properties"),
    (dict(type="page", userId="u1", name="Survey", properties={LONG: 9}), "properties"),
    (dict(type="identify", userId="u1", traits={LONG: 9}), "traits"),
])
def test_a_segment_key_over_the_limit_is_a_row_error_naming_it(fields, field):
    problems = read_message(message(**fields), 7)
    assert isinstance(problems, list) and [(p.row, p.column, p.code) for p in problems] == \
        [(7, field, "name_too_long")]
    assert "'Wie zufrieden waren Sie mit der Beratung'... is 151 bytes" in problems[0].message


def test_segment_keys_that_are_no_names_are_not_limited():
    # a group's traits are one attribute's JSON value; an identify's properties are not read
    assert isinstance(read_message(message(type="group", userId="u1", groupId="g", traits={LONG: 1}), 1), Message)
    assert isinstance(read_message(message(type="identify", userId="u1", properties={LONG: 1}), 1), Message)
    assert isinstance(read_message(message(type="track", userId="u1", event="E", properties={"x" * NAME_LIMIT: 1}),
                                   1), Message)
