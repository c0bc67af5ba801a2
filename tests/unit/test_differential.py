"""The events chunk core against its reference (tests/reference/events_core.py): the same outcome,
row for row and byte for byte, over generated files of every dialect, time format and error code,
hostile cells, duplicates inside and across chunks, triggering and dry runs.

Each file goes through the real producer (scan, then chunks), as a worker receives it. Both cores
then run chunk after chunk with the same state carried over: the people created so far and the
import's memory of its event ids (what the commit would have recorded).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import random
import sys
import zlib
from datetime import UTC
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.source import Source
from producers.split import chunks, scan
from tests.reference import events_core as reference
from worker.events import chunk as core
from worker.events import rules
from worker.events.rows import dedupe_key
from worker.spec import ImportSpec
from worker.timestamps import EXCEL, zone

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from generate import generate

NOW = 1_735_000_000.0  # 2024-12-24: the generated times are before it, a few after it
CAMPAIGNS = rules.by_event([
    rules.Campaign("welcome", "Signed up", 0),
    rules.Campaign("nudge", "Added to cart", 3600),
    rules.Campaign("thanks", "Completes checkout", 7200, "loose"),
    rules.Campaign("late", "Refunded", 86_400 * 10),
    rules.Campaign("coffee", "Cafe\u0301 visit", 600),  # defined decomposed: triggered by the composed name too
])


#: Every field of assemble's outcome (the pipeline adds the ``anonymous`` events a Segment chunk holds).
COMPARED = ("errors", "warnings", "create", "keys", "bodies", "outcomes", "ends", "ids")


def _outcome_fields(outcome) -> tuple:
    return tuple(bytes(v) if isinstance(v, bytearray) else v for v in (getattr(outcome, n) for n in COMPARED))


def test_the_cores_are_compared_on_every_field_assemble_makes():
    assert {f.name for f in dataclasses.fields(core.ChunkOutcome)} == {*COMPARED, "anonymous"}


def run_both(path: Path, *, chunk_rows: int = 500, known: dict[str, str] | None = None,
             id_owners: dict[str, str] | None = None, **options) -> dict:
    """Import ``path`` through both cores, chunk by chunk; assert they agree; return counts of what was seen.
    ``id_owners``: the directory's people by id, for a file matched by e-mail with an id column."""
    read = {k: options.pop(k) for k in ("delimiter", "encoding", "dialect", "identifier") if k in options}
    source = Source.open(path)
    plan = scan(source, **read)
    spec = ImportSpec(import_id="diff", columns=plan.columns, identifier=plan.identifier, **options)
    campaigns = CAMPAIGNS if spec.trigger else rules.NO_CAMPAIGNS
    existing = dict(known or {})
    memory: dict[bytes, bytes] = {}
    seen = {"blank": plan.blank, "rows": 0, "events": 0, "errors": set(), "warnings": set(), "reused": 0,
            "told": 0, "named": 0}
    for chunk in chunks(source, plan, chunk_rows):
        rows, numbers = chunk.rows, chunk.row_numbers
        want_v = reference.validate_rows(rows, numbers, spec.columns, identifier=spec.identifier,
                                         tz=zone(spec.timezone) or UTC, now=NOW, clock_skew_s=300,
                                         formats=spec.date_formats, dst=spec.dst)
        got_v = core.validate(spec, rows, numbers, NOW, 300)
        assert got_v.events == want_v.events
        assert got_v.errors == want_v.errors and got_v.warnings == want_v.warnings
        # both told all the import remembers (a chunk told it after a refused commit)
        want = reference.assemble(spec, want_v, rows, numbers, existing, campaigns, NOW, 300, memory, id_owners)
        got = core.assemble(spec, got_v, rows, numbers, existing, campaigns, NOW, 300, memory, id_owners)
        assert _outcome_fields(got) == _outcome_fields(want)
        # the keys assemble makes inline are the production dedupe_key's (undo recomputes marks with it)
        by_row = {e.row: e for e in got_v.events}
        rows_kept = [orjson.loads(body)["row"] for body in bytes(got.bodies).split(b"\n")] if got.ends else []
        assert bytes(got.keys) == b"".join(dedupe_key(by_row[r]) or core.NO_KEY for r in rows_kept)
        # what the commit records, so the next chunks see it
        memory.update(got.remember)
        existing.update({key: "c" for key, _ in got.create})
        seen["rows"] += len(rows)
        seen["events"] += len(got.outcomes)
        for _, _, problems in want_v.errors:
            seen["errors"].update(p.code for p in problems)
        for _, _, problems in want_v.warnings:
            seen["warnings"].update(p.code for p in problems)
        seen["errors"].update(code for code in ("person_not_found", "ambiguous_email") if code.encode() in
                              b"".join(want.errors))
        seen["reused"] += sum(b"event_id_reused" in w for w in want.warnings)
        modes = [place >> 24 for place, *_ in core.ID_RECORD.iter_unpack(want.ids)]
        seen["told"] += sum(bool(m & core.TOLD) for m in modes)
        seen["named"] += sum(bool(m & core.NAMED) for m in modes)
        seen["mismatched"] = seen.get("mismatched", 0) + sum(b"id_email_mismatch" in w for w in want.warnings)
    source.close()
    return seen


@pytest.mark.parametrize("dialect", ["vero", "customerio"])
@pytest.mark.parametrize("trigger", [False, True])
def test_the_benchmark_files(tmp_path, dialect, trigger):
    path = tmp_path / "events.csv"
    with path.open("w", newline="") as out:
        generate(out, 6000, dialect=dialect, people=800)
    seen = run_both(path, create_people=True, trigger=trigger)
    assert seen["rows"] == 6000 and seen["events"] > 5000
    assert {"invalid_time", "missing_event_name"} <= seen["errors"]


EXAMPLES = Path(__file__).resolve().parents[2] / "producers" / "examples"


@pytest.mark.parametrize("name", ["vero_events.csv", "customerio_events.csv", "events_with_errors.csv"])
@pytest.mark.parametrize("trigger", [False, True])
def test_the_example_files(name, trigger):
    seen = run_both(EXAMPLES / name, create_people=True, trigger=trigger, chunk_rows=2)
    assert seen["events"] > 0


EMAILS = ["ann@example.com", "ANN@Example.com", " bob@example.org ", "mailto:ann@example.com", "not-an-email",
          "", "'carl@example.com", "dee@example.com\u200b", "eve@example.com\u00a0", "x@y", "f\u00fcr@b\u00fccher.de",
          "ann@example.com;bob@example.org", "1.23457E+15",
          # the same person composed and decomposed (macOS), with an invisible character too; domains
          "ren\u00e9e@example.com", "rene\u0301e@example.com", "Rene\u0301e@Example.com\u200b",
          "f\u00fcr@bu\u0308cher.de",
          "a@b..com", "a@.b.com", "a@-b.com", "a@b-.com", "a@b.com.", "x@\u4f8b\u3048.jp", "u@xn--bcher-kva.de"]
IDS = ["42", "7985351721238", "'7985351721238", "1.23457E+15", "1,23457E+15", "", "u-9\u200b", "  13  ",
       "jos\u00e9", "jose\u0301", "jose\u0301\u200b", "\u212b-1", "\u00c5-1"]
NAMES = ["Signed up", "Added to cart", "Completes checkout", "completes_checkout", "COMPLETES  CHECKOUT",
         "Refunded", "", "Viewed\u200b product", "\ufeffOpened app", "caf\u00e9 \u200d", "  Bought ",
         "Caf\u00e9 visit", "Cafe\u0301 visit", "Cafe\u0301\u200b visit", "cafe\u0301_visit"]
TIMES = ["2024-12-20T10:00:00Z", "2024-12-23 18:01+10", "2024-12-23T23:59:59.123456+05:30", "2024-12-22",
         "1734800000", "1734800000123", "20241220", "45645.5", "20/12/2024", "2024-12-20T10:00:00",
         "2025-06-01T00:00:00Z", "2024-02-30", "last tuesday", "", "  1734800000  ", "2024-12-10T10:00:00Z",
         "17348000001", "-1642212000", "1.7348E+09", "12/20/2024 10:00",
         # New York's clock changes (02:30 skipped, 01:30 twice), Sydney's, and a date on one
         "2024-03-10 02:30:00", "2024-03-10 03:30:00", "2024-03-10T02:00", "2024-11-03 01:30:00",
         "2024-11-03T01:59:59.999", "2024-10-06 02:30", "2024-04-07T02:30:00", "2024-03-10", "20241103",
         "03/10/2024 02:30", "11/03/2024 01:30", "45361.104166666664", "45599.0625",
         # RFC 3339's lower case, GA4's microseconds, and numbers of 14 and 15 digits
         "2024-12-20t10:00:00z", "2024-12-20t10:00:00.5+01:00", "1734800000123456", "17348000001234",
         "173480000012345"]
CELLS = ["", "plain", "=cmd|' /C calc'!A0", "+1+1", "'=literal", "''kept one", "-12.5", "caf\u00e9",
         "line\nbreak", "tab\there", "\u202eevil", "emoji \U0001f600", "a,b", "\"quoted\"", "  spaced  ", "0",
         "null", "TRUE", "\u00a0nbsp\u00a0", "x" * 300,
         "cafe\u0301", "caf\u00e9"]  # (property values: kept as written, decomposed or not)
RECIPIENTS = ["", "to@example.com", "not an address", "'to@example.com", "to@b..com", "to@b\u00fccher.de"]


def hostile_file(path: Path, rng: random.Random, rows: int, *, identifier: str, delimiter: str = ",",
                 id_column: bool = True, user_ids: bool = False) -> None:
    """Rows from the lists above, ragged ones, exact repeats and event ids reused for other events
    (``user_ids``: a file of e-mails whose last column is the person's id, a property)."""
    people = EMAILS if identifier == "email" else IDS
    header = ["email" if identifier == "email" else "id", "event_name", "time"]
    header += ["event_id"] if id_column else []
    header += ["note", "recipient", "plan", "Amount"] + (["id"] if user_ids else [])
    written: list[list[str]] = []
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator=rng.choice(["\n", "\r\n"]))
    writer.writerow(header)
    for _ in range(rows):
        roll = rng.random()
        if written and roll < 0.12:
            row = list(rng.choice(written))  # the same event again
        elif written and id_column and roll < 0.16:
            row = list(rng.choice(written))
            row[4] = rng.choice(CELLS)  # its id kept, for another event (or the same, when the note is the same)
        else:
            person = rng.choice(people) if rng.random() < 0.5 else (
                f"p{rng.randrange(40)}@example.com" if identifier == "email" else str(rng.randrange(40)))
            row = [person, rng.choice(NAMES), rng.choice(TIMES)]
            row += [rng.choice(["", f"ev-{rng.randrange(300)}", "1.5E+12", "'ev-7", "ev\u200b-8", "\u00e9v-9",
                                "e\u0301v-9"])] if id_column else []
            row += [rng.choice(CELLS), rng.choice(RECIPIENTS), rng.choice(CELLS), rng.choice(CELLS)]
            row += [rng.choice(IDS + ["1", "2", "3", "9"])] if user_ids else []
        written.append(row)
        shape = rng.random()
        if shape < 0.03:
            row = row[: rng.randrange(1, len(row))]
        elif shape < 0.05:
            row = row + [rng.choice(CELLS)]
        elif shape < 0.06:
            row = row + ["", ""]
        writer.writerow(row)
    path.write_text(out.getvalue(), encoding="utf-8", newline="")


OPTION_SETS = [
    dict(create_people=True),
    dict(create_people=False),
    dict(create_people=True, trigger=True),
    dict(create_people=True, trigger=True, trigger_window_s=None),
    dict(create_people=True, trigger=True, dry_run=True),
    dict(create_people=True, timezone="Australia/Sydney"),
    dict(create_people=True, date_formats=("%d/%m/%Y",)),
    dict(create_people=True, date_formats=(EXCEL, "%m/%d/%Y %H:%M")),
    dict(create_people=True, timezone="America/New_York"),
    dict(create_people=True, timezone="America/New_York", dst="later", date_formats=(EXCEL, "%m/%d/%Y %H:%M")),
    dict(create_people=True, timezone="America/New_York", dst="earlier"),
]


@pytest.mark.parametrize("identifier", ["email", "id"])
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_hostile_files(tmp_path, identifier, options):
    rng = random.Random(zlib.crc32(repr((identifier, options)).encode()))
    path = tmp_path / "hostile.csv"
    hostile_file(path, rng, 2500, identifier=identifier, delimiter=rng.choice([",", ";", "\t"]))
    known = {"p1@example.com": "c1", "p2@example.com": "c2,c3", "1": "c1", "2": "c4"}
    chunk_rows = rng.choice([1, 7, 250, 2000]) if options.get("trigger") else 250
    seen = run_both(path, chunk_rows=chunk_rows, known=known, identifier=identifier, **options)
    assert seen["rows"] + seen["blank"] == 2500
    # ids the import used before, and ids a chunk uses again for another event (not in chunks of one row,
    # nor where nearly every person is unknown)
    assert seen["told"] > 0 and (seen["named"] > 0 or chunk_rows == 1 or not options["create_people"])
    codes = {"missing_person", "missing_event_name", "invalid_time", "mangled_number"}
    codes |= {"invalid_email"} if identifier == "email" else set()
    assert codes <= seen["errors"], seen["errors"]
    assert seen["reused"] > 0
    if not options["create_people"]:
        assert "person_not_found" in seen["errors"]
    if options.get("timezone") == "America/New_York" and not options.get("dst"):
        assert "ambiguous_time" in seen["errors"]
    assert {"invisible_characters", "future_time"} & seen["warnings"]
    assert {"invisible_characters", "unicode_normalized"} <= seen["warnings"]


@pytest.mark.parametrize("create_people", [True, False])
def test_vero_files_matched_by_email_with_an_id_column(tmp_path, create_people):
    rng = random.Random(11 + create_people)
    path = tmp_path / "both.csv"
    hostile_file(path, rng, 2000, identifier="email", user_ids=True)
    known = {"p1@example.com": "c1", "p2@example.com": "c2,c3", "p3@example.com": "c3"}
    seen = run_both(path, chunk_rows=rng.choice([1, 7, 250]), known=known, id_owners={"1": "c1", "2": "c4", "3": "c3"},
                    identifier="email", create_people=create_people)
    assert seen["mismatched"] > 0


def test_files_without_an_id_column_or_a_time(tmp_path):
    rng = random.Random(3)
    path = tmp_path / "no-ids.csv"
    hostile_file(path, rng, 1500, identifier="email", id_column=False)
    assert run_both(path, create_people=True)["events"] > 0
    bare = tmp_path / "bare.csv"
    bare.write_text("email,event_name\r\n" + "".join(f"u{n % 50}@example.com,Bought\r\n" for n in range(300)),
                    encoding="utf-8-sig", newline="")
    assert run_both(bare, create_people=True, chunk_rows=64)["events"] == 300


CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
# Text as macOS writes it: letters followed by combining accents (and a singleton, an invisible character).
DECOMPOSED = st.text(st.sampled_from("aeoAE \u0301\u0300\u0308\u0327\u030a\u212b\u200b"), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.one_of(st.sampled_from(EMAILS), CELL,
                                         DECOMPOSED.map(lambda s: s + "@example.com")),
                               st.one_of(st.sampled_from(NAMES), CELL, DECOMPOSED),
                               st.one_of(st.sampled_from(TIMES), CELL),
                               st.one_of(st.sampled_from(["", "e1", "e2", "e3"]), DECOMPOSED),
                               st.one_of(CELL, DECOMPOSED), st.sampled_from(RECIPIENTS)).map(list),
                     min_size=1, max_size=40),
       chunk_rows=st.integers(1, 9), trigger=st.booleans())
def test_any_cells(tmp_path, rows, chunk_rows, trigger):
    rows = [r for r in rows if any(c.strip() for c in r)] or [["a@b.co", "x", "", "", "", ""]]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["email", "event_name", "time", "event_id", "note", "recipient"])
    writer.writerows(rows)
    path = tmp_path / "any.csv"
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    run_both(path, chunk_rows=chunk_rows, identifier="email", create_people=True, trigger=trigger)
