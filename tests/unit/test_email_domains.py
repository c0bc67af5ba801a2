"""E-mail domains: an empty label, a label starting or ending with a hyphen, a trailing dot are not
addresses (DNS has no such names, so nothing is delivered to them); IDN domains are.

The people file is shaped like a HubSpot contacts export (quoted cells, "Record ID", "Email",
"Create Date"), holding the typos such exports do hold; the events file is a Vero one whose
reserved ``recipient`` data is checked by the same function. No Redis: the producer's reading
and the pure cores.
"""
from __future__ import annotations

from datetime import UTC

import pytest

from producers.source import Source
from producers.split import chunks, scan
from worker.cells import email_problem, is_email
from worker.events.plain import validate_chunk
from worker.events.rows import validate_rows
from worker.people.rows import validate_people
from worker.segment.plan import plan as segment_plan

VALID = ["ann@example.com", "user@b\u00fccher.de", "x@\u4f8b\u3048.jp", "user@xn--bcher-kva.de",
         "a.b-c@mail-1.example.co.uk", "o'brien@example.ie"]
FAULTS = {
    "ann@example..com": "the domain has an empty label (two dots together)",
    "ann@.example.com": "the domain has an empty label (a dot right after the @)",
    "ann@-example.com": "a label of the domain starts with a hyphen",
    "ann@example-.com": "a label of the domain ends with a hyphen",
    "ann@mail.example.com-": "a label of the domain ends with a hyphen",
    "ann@example.com.": "the domain ends with a dot",
}


@pytest.mark.parametrize("value", VALID)
def test_idn_and_punycode_domains_are_addresses(value):
    assert is_email(value)


@pytest.mark.parametrize("value, fault", FAULTS.items())
def test_a_bad_domain_is_no_address_and_the_message_says_what_is_wrong(value, fault):
    assert not is_email(value)
    assert email_problem(value) == f"{value!r} is not an e-mail address: {fault}"
    assert email_problem(value, "recipient must be an e-mail address, got ") == \
        f"recipient must be an e-mail address, got {value!r}: {fault}"


def test_other_non_addresses_keep_their_plain_message():
    assert email_problem("not-an-email") == "'not-an-email' is not an e-mail address"
    assert email_problem("a@b") == "'a@b' is not an e-mail address"


def _read(tmp_path, text: str, **options):
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode("utf-8"))
    source = Source.open(path)
    plan = scan(source, **options)
    [chunk] = list(chunks(source, plan, 1000))
    source.close()
    return plan, chunk


HUBSPOT = (
    '"Record ID","First Name","Last Name","Email","Create Date","Lifecycle Stage"\r\n'
    '"5101","Ann","Lee","ann@example.com","2024-03-01 10:22","customer"\r\n'
    '"5102","Jo","M\u00fcller","jo@m\u00fcller-b\u00e4ckerei.de","2024-03-02 09:01","lead"\r\n'
    '"5103","Bo","Ng","bo@gmail..com","2024-03-02 11:40","lead"\r\n'
    '"5104","Cy","Ok","cy@-example.org","2024-03-03 08:00","lead"\r\n'
    '"5105","Di","Po","di@example.org.","2024-03-03 09:15","subscriber"\r\n'
    '"5106","Ed","Qu","ed@xn--mller-kva.de","2024-03-04 12:00","customer"\r\n'
)


def test_a_crm_people_export_with_domain_typos(tmp_path):
    plan, chunk = _read(tmp_path, HUBSPOT, people={"mapping": {"record id": "id"}, "skip": (),
                                                    "data_to_process": "all"})
    out = validate_people(chunk.rows, chunk.row_numbers, plan.columns, tz=UTC, clear_empty=False)
    assert [r.email for r in out.rows] == ["ann@example.com", "jo@m\u00fcller-b\u00e4ckerei.de", "ed@xn--mller-kva.de"]
    refused = {row: [(p.column, p.code, p.message) for p in problems] for row, _, problems in out.errors}
    assert refused == {
        4: [("Email", "invalid_email", "'bo@gmail..com' is not an e-mail address: the domain has an empty label "
                                       "(two dots together)")],
        5: [("Email", "invalid_email", "'cy@-example.org' is not an e-mail address: a label of the domain starts "
                                       "with a hyphen")],
        6: [("Email", "invalid_email", "'di@example.org.' is not an e-mail address: the domain ends with a dot")],
    }


def test_an_events_file_checks_the_person_and_reserved_data_alike(tmp_path):
    plan, chunk = _read(tmp_path, "email,event_name,time,recipient\n"
                                  "ann@example.com,Order shipped,2024-03-01T10:00:00Z,ann@example.com\n"
                                  "bo@gmail..com,Order shipped,2024-03-01T10:00:00Z,\n"
                                  "cy@example.org,Order shipped,2024-03-01T10:00:00Z,gift@example-.com\n"
                                  "jo@b\u00fccher.de,Order shipped,2024-03-01T10:00:00Z,jo@\u4f8b\u3048.jp\n")
    options = dict(identifier="email", tz=UTC, now=1_800_000_000.0, clock_skew_s=300)
    out = validate_rows(chunk.rows, chunk.row_numbers, plan.columns, **options)
    assert validate_chunk(chunk.rows, chunk.row_numbers, plan.columns, **options) == out
    assert [e.row for e in out.events] == [2, 5]
    refused = {row: [(p.column, p.message) for p in problems] for row, _, problems in out.errors}
    assert refused == {
        3: [("email", "'bo@gmail..com' is not an e-mail address: the domain has an empty label (two dots "
                      "together)")],
        4: [("recipient", "recipient must be an e-mail address, got 'gift@example-.com': a label of the domain "
                          "ends with a hyphen")],
    }


def test_segment_trait_emails_are_checked_alike():
    lines = ['{"type":"identify","userId":"u1","traits":{"email":"u1@example..com"}}',
             '{"type":"identify","userId":"u2","traits":{"email":"u2@b\\u00fccher.de"}}',
             '{"type":"track","userId":"u3","event":"x","context":{"traits":{"email":"u3@-x.com"}}}']
    out = segment_plan(lines, [1, 2, 3], tz=UTC, now=1_800_000_000.0, clock_skew_s=300)
    [(row, _, [problem])] = out.errors
    assert (row, problem.code) == (1, "invalid_email")
    assert problem.message == ("'u1@example..com' is not an e-mail address: the domain has an empty label "
                               "(two dots together)")
    assert out.ops[0].email == "u2@b\u00fccher.de"
    [(row, _, [warning])] = out.warnings
    assert row == 3 and warning.code == "invalid_email" and "starts with a hyphen" in warning.message
