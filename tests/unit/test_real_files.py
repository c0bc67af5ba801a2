"""Files as people really have them: Excel and Google Sheets exports, local dates, stray bytes.

Each test holds a file (or a cell) of the kind that was once imported wrong or refused;
no Redis: the producer's reading and the pure core.
"""
from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest

from producers.source import Source
from producers.split import chunks, scan
from worker.errors import FileProblem
from worker.events.dialects import plan_columns
from worker.events.plain import validate_chunk
from worker.events.rows import validate_rows
from worker.timestamps import EXCEL, parse_time, time_problem

UTC = UTC


def at(*args):
    return datetime(*args, tzinfo=UTC).timestamp()


def read(tmp_path, data: bytes, name="f.csv", **options):
    path = tmp_path / name
    path.write_bytes(data)
    source = Source.open(path)
    plan = scan(source, **options)
    return plan, [r for c in chunks(source, plan, 1000) for r in c.rows]


def validate(header, rows, **options):
    """validate_rows's outcome, checked equal to the column-at-a-time path's (what a worker runs)."""
    numbers, columns = list(range(2, 2 + len(rows))), plan_columns(header)
    options = dict(identifier=options.pop("identifier", "email"), tz=UTC, now=at(2030, 1, 1), clock_skew_s=300,
                   **options)
    outcome = validate_rows(rows, numbers, columns, **options)
    assert validate_chunk(rows, numbers, columns, **options) == outcome
    return outcome


def errors(outcome):
    return {row: [(p.code, p.message) for p in problems] for row, _, problems in outcome.errors}


# 1. bare numbers are a time only where they can be one ------------------------------------------------

@pytest.mark.parametrize("text, code, words", [
    ("45356.58", "invalid_time", ["Excel date serial", "2024-03-05 13:55", "--date-format excel"]),
    ("45356", "invalid_time", ["Excel date serial", "2024-03-05"]),
    ("2024", "invalid_time", ["10 digits", "13"]),
    ("164221200", "invalid_time", ["10 digits"]),        # 9 digits: not taken for 1975
    ("-1642212000", "invalid_time", ["not a time"]),
])
def test_bare_numbers_that_cannot_be_unix_times_are_refused_and_say_why(text, code, words):
    assert parse_time(text) is None
    got_code, message = time_problem(text)
    assert got_code == code and all(w in message for w in words), message


def test_what_numbers_are_accepted():
    assert parse_time("1642212000") == 1642212000.0                 # 10 digits: seconds
    assert parse_time("1642212000123") == pytest.approx(1642212000.123)  # 13 digits: milliseconds
    assert parse_time("20240305") == at(2024, 3, 5)                 # YYYYMMDD: a date
    assert parse_time("20241305") is None                           # not a date
    assert parse_time("45356.58", formats=(EXCEL,)) == pytest.approx(at(2024, 3, 5, 13, 55, 12))


def test_local_dates_need_a_format_and_the_message_names_the_likely_one():
    assert parse_time("10/18/2010") is None
    code, message = time_problem("10/18/2010")
    assert code == "invalid_time" and "--date-format '%m/%d/%Y'" in message
    assert "'%d.%m.%Y %H:%M'" in time_problem("18.10.2010 14:30")[1]
    assert "month/day or day/month" in time_problem("03/04/2024")[1]
    assert parse_time("10/18/2010", formats=("%m/%d/%Y",)) == at(2010, 10, 18)
    assert parse_time("18/10/2010 14:30", formats=("%m/%d/%Y", "%d/%m/%Y %H:%M")) == at(2010, 10, 18, 14, 30)


def test_two_formats_that_read_a_value_differently_refuse_it():
    formats = ("%m/%d/%Y", "%d/%m/%Y")
    assert parse_time("03/04/2024", formats=formats) is None
    code, message = time_problem("03/04/2024", formats=formats)
    assert code == "ambiguous_time" and "2024-03-04" in message and "2024-04-03" in message
    assert parse_time("18/04/2024", formats=formats) == at(2024, 4, 18)  # only one reading: fine


def test_an_excel_serial_in_a_file_is_a_row_error_not_1970():
    out = validate(["email", "event_name", "time"], [["a@b.co", "Ordered", "45356.58"],
                                                     ["a@b.co", "Ordered", "20240305"]])
    assert errors(out)[2][0][0] == "invalid_time" and out.events[0].ts == at(2024, 3, 5)


# 2. a file holding UTF-8 text is UTF-8 ------------------------------------------------------------------

def test_one_stray_cp1252_byte_in_a_utf8_file_refuses_it_naming_both_lines(tmp_path):
    body = "email,event_name,city\n" + "".join(f"p{n}@example.de,Ordered,Zürich\n" for n in range(3000))
    data = body.encode() + "müller@example.de,Ordered,Köln\n".encode("cp1252")
    with pytest.raises(FileProblem) as caught:
        read(tmp_path, data)
    assert caught.value.code == "mixed_encoding" and caught.value.line == 3002
    assert "line 3002 has byte 0xfc" in str(caught.value) and "line 2 holds UTF-8 text ('Zürich')" in str(caught.value)


def test_a_file_without_any_utf8_text_is_cp1252(tmp_path):
    plan, rows = read(tmp_path, "email,event_name,city\nm@example.de,Bestellt,Köln\n".encode("cp1252"))
    assert plan.sniffed.encoding == "cp1252" and rows == [["m@example.de", "Bestellt", "Köln"]]
    assert "line 2 has byte 0xf6" in plan.sniffed.encoding_reason


# 3, 4. identifiers and names: Excel-mangled ids, mailto: links, invisible characters --------------------

def test_excel_mangled_ids_are_errors():
    out = validate(["id", "event_name", "event_id"], [["1.23457E+15", "x", ""], ["42", "x", "1.23457E+15"],
                                                    ["42", "x", "1234567890123456"]], identifier="id")
    assert [c for c, _ in errors(out)[2]] == ["mangled_number"] and [c for c, _ in errors(out)[3]] == ["mangled_number"]
    assert "scientific notation" in errors(out)[2][0][1] and out.events[0].event_id == "1234567890123456"


def test_a_mailto_link_is_not_an_address():
    out = validate(["email", "event_name"], [["mailto:ann@example.com", "x"], ["MAILTO:ann@example.com", "x"]])
    assert errors(out)[2] == [("invalid_email", "'mailto:ann@example.com' is a mailto: link, not an address: "
                                                "write 'ann@example.com'")]
    assert 3 in errors(out)


def test_invisible_characters_are_removed_from_names_and_ids_with_a_warning():
    out = validate(["email", "event_name", "event_id"],
                   [["\u200bann@example.com", "Completes checkout\u200b", "E\u2060-1"],
                    ["bob@example.com", "\u202bطلب\u202c", "E-2"]])
    first, second = out.events
    assert (first.person, first.name, first.event_id) == ("ann@example.com", "Completes checkout", "E-1")
    assert second.name == "طلب"
    codes = {row: [p.code for p in problems] for row, _, problems in out.warnings}
    assert codes == {2: ["invisible_characters"] * 3, 3: ["invisible_characters"]}
    assert "U+200B ZERO WIDTH SPACE" in out.warnings[0][2][0].message


# 5. a leading apostrophe is the spreadsheet's text marker ----------------------------------------------

def test_a_leading_apostrophe_is_removed_in_every_file():
    out = validate(["email", "event_name", "shopify_id", "note"],
                   [["a@b.co", "x", "'7985351721238", "''quoted"]])
    assert out.events[0].data == {"shopify_id": "7985351721238", "note": "'quoted"}


# 6. damaged gzip files -----------------------------------------------------------------------------------

def test_a_truncated_or_corrupt_gzip_is_a_clear_file_problem(tmp_path):
    whole = gzip.compress(("email,event_name\n" + "a@b.co,x\n" * 50_000).encode())
    with pytest.raises(FileProblem, match="ends before its last block") as cut:
        read(tmp_path, whole[: len(whole) // 2], "cut.csv.gz")
    bad_crc = bytearray(whole)
    bad_crc[-8] ^= 0xFF
    with pytest.raises(FileProblem, match="damaged gzip file") as corrupt:
        read(tmp_path, bytes(bad_crc), "crc.csv.gz")
    assert cut.value.code == corrupt.value.code == "unreadable"


# 14, 15. spaces around quoted fields; a BOM written twice ------------------------------------------------

def test_spaces_around_quoted_fields_as_in_veros_example(tmp_path):
    data = b'email , event_name , time , item_type\n"ann@example.com" , "Completes checkout" , ' \
           b'"2022-01-02 13:05+10" , "yellow, large"\n  "bob@example.com",  "x"  ,"",y\n'
    plan, rows = read(tmp_path, data)
    assert plan.sniffed.quote_spaces
    assert [[c.strip() for c in r] for r in rows] == [["ann@example.com", "Completes checkout", "2022-01-02 13:05+10",
                                                       "yellow, large"], ["bob@example.com", "x", "", "y"]]


def test_quotes_that_are_really_malformed_are_still_refused(tmp_path):
    with pytest.raises(FileProblem) as caught:
        read(tmp_path, b'email,event_name\n"a@b.co"x,y\n')
    assert caught.value.code == "bad_csv"


def test_a_doubled_bom_still_reads_the_header(tmp_path):
    plan, rows = read(tmp_path, "\ufeff\ufeffemail,event_name\na@b.co,x\n".encode())
    assert plan.columns.header == ("email", "event_name") and rows == [["a@b.co", "x"]]


# Found by trying the product with real exports ------------------------------------------------------

@pytest.mark.parametrize("name", ["Timestamp (UTC)", "Occurred At", "created_at", "Date/Time", "event_timestamp",
                                  "Purchase Date", "ts", "createdAt"])
def test_a_column_named_like_a_time_that_is_not_read_as_one_refuses_the_file(name):
    """Otherwise every event happens "now": a 2023 order would trigger its campaign today."""
    with pytest.raises(FileProblem) as caught:
        plan_columns(["Email", "Event Name", name, "Order Total"])
    assert caught.value.code == "unread_time_column" and f"--map '{name}=time'" in str(caught.value)
    assert plan_columns(["Email", "Event Name", name], mapping={name: "time"}).time == 2
    assert plan_columns(["Email", "Event Name", name], mapping={name: name}).properties == ((2, name),)
    assert plan_columns(["email", "event_name", "candidate", "lifetime_value"]).time is None  # no time word


def test_event_beside_name_is_refused_as_ambiguous_not_guessed():
    with pytest.raises(FileProblem, match="'Name' and 'Event' could each be the event name"):
        plan_columns(["Name", "Email", "Event", "Date"])
    assert plan_columns(["Email", "Event", "Date"]).name == 1


def test_given_date_formats_come_first_for_digits_too():
    assert parse_time("2024030110", formats=("%Y%m%d%H",)) == at(2024, 3, 1, 10)  # not Unix seconds in 2034
    assert parse_time("20240301", formats=("%Y%d%m",)) == at(2024, 1, 3)
    assert parse_time("2024-03-01T10:00:00Z", formats=("%m/%d/%Y",)) == at(2024, 3, 1, 10)
    assert "matches none of the given --date-format" in time_problem("yesterday", formats=("%m/%d/%Y",))[1]


def test_unix_times_have_no_leading_zero_and_excel_serials_match_excel():
    assert parse_time("0000000000") is None and parse_time("0000000000000") is None
    assert parse_time("1", formats=(EXCEL,)) == at(1900, 1, 1) and parse_time("61", formats=(EXCEL,)) == at(1900, 3, 1)
    assert "--date-format '%m/%d/%Y %I:%M %p'" in time_problem("10/18/2010 2:30 PM")[1]
    assert "YYYYMMDD" in time_problem("20221301")[1] and "Excel" not in time_problem("01032024")[1]


def test_a_no_break_space_in_an_event_name_becomes_a_space_with_a_warning():
    out = validate(["email", "event_name"], [["a@b.co", "Completes\u00a0Order"]])
    assert out.events[0].name == "Completes Order"
    assert "U+00A0 NO-BREAK SPACE, made a space" in out.warnings[0][2][0].message


def test_a_header_that_ties_between_delimiters_is_settled_by_the_rows(tmp_path):
    plan, rows = read(tmp_path, b"email;event_name;Amount, gross, EUR\na@b.co;x;1,5\n")
    assert plan.sniffed.delimiter == ";" and rows == [["a@b.co", "x", "1,5"]]


def test_chunks_are_bounded_by_bytes_as_well_as_rows(tmp_path):
    path = tmp_path / "big-cells.csv"
    path.write_text("email,event_name,note\n" + "".join(f"p{n}@b.co,x,{'z' * 30_000}\n" for n in range(100)))
    source = Source.open(path)
    plan = scan(source)
    sizes = [len(c.rows) for c in chunks(source, plan, 2000, chunk_bytes=300_000)]
    assert sizes == [10] * 10  # 30 KB rows, 300 KB chunks


def test_a_row_of_a_million_cells_is_refused_at_the_scan(tmp_path):
    with pytest.raises(FileProblem) as caught:
        read(tmp_path, b"email,event_name\na@b.co,x\na@b.co,x" + b"," * 100_000 + b"\n")
    assert caught.value.code == "row_too_wide" and caught.value.line == 3
