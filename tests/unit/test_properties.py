"""Properties over generated input (hypothesis): what a spreadsheet writes is what the reader reads,
and every row of a file is counted once, as an event, a duplicate or an error."""
from __future__ import annotations

import csv
import io
import tempfile
from datetime import UTC
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.source import Source
from producers.split import chunks, scan
from worker.events import chunk as core
from worker.events import rules
from worker.events.dialects import plan_columns
from worker.events.rows import dedupe_key, validate_rows
from worker.people.columns import plan_people_columns
from worker.people.rows import validate_people
from worker.spec import ImportSpec

# Any text a cell can hold: not NUL (refused as binary), not lone surrogates (not encodable).
CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
DELIMITER = st.sampled_from([",", ";", "\t", "|"])


def read_back(data: bytes, chunk_rows: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.csv"
        path.write_bytes(data)
        source = Source.open(path)
        plan = scan(source, max_columns=100)
        return [row for chunk in chunks(source, plan, chunk_rows) for row in chunk.rows]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(2, 6), delimiter=DELIMITER, quote_all=st.booleans(), chunk_rows=st.integers(1, 7),
       data=st.data())
def test_records_read_equal_records_written(width, delimiter, quote_all, chunk_rows, data):
    cell = CELL if quote_all else CELL.map(str.lstrip)  # unquoted leading spaces are skipped, as Excel does
    records = data.draw(st.lists(st.lists(cell, min_size=width, max_size=width), max_size=30))
    records = [r for r in records if any(c.strip() for c in r)]  # blank records (whitespace only) are skipped
    out = io.StringIO(newline="")
    # Spreadsheets quote any cell holding a CR or LF; Python's writer quotes only the characters of
    # its line terminator, so minimal quoting is written with "\r\n" (Excel's) to hold both.
    writer = csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
                        lineterminator=data.draw(st.sampled_from(["\n", "\r\n"])) if quote_all else "\r\n")
    writer.writerow(["email", "event_name", *[f"c{i}" for i in range(width - 2)]])
    writer.writerows(records)
    assert read_back(out.getvalue().encode(), chunk_rows) == records


EMAILS = st.sampled_from(["ann@example.com", "ANN@example.com", "bob@example.org", "not-an-email", "", " x@y.co "])
NAMES = st.sampled_from(["Bought", "Viewed", "", " Signed up "])
TIMES = st.sampled_from(["", "2024-01-01T00:00:00Z", "2024-01-02 13:05+10", "1700000000", "1700000000123",
                         "last tuesday", "2024-02-30", "99999999999999999"])
IDS = st.sampled_from(["", "ev-1", "ev-2", "ev-3"])
EVENT_ROW = st.tuples(EMAILS, NAMES, TIMES, IDS, CELL, st.sampled_from(["", "x@y.co", "bad"])).map(list)
RAGGED = st.one_of(EVENT_ROW, EVENT_ROW.map(lambda r: r[:3]), EVENT_ROW.map(lambda r: r + ["extra"]))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(RAGGED, max_size=60), chunk_rows=st.integers(1, 20))
def test_every_event_row_counted_once(rows, chunk_rows):
    columns = plan_columns(["email", "event_name", "time", "event_id", "item", "recipient"])
    spec = ImportSpec(import_id="p", columns=columns, identifier="email", create_people=True)
    seen: set[bytes] = set()
    imported = duplicates = errors = 0
    numbered = list(range(2, 2 + len(rows)))
    for start in range(0, len(rows), chunk_rows):
        part, numbers = rows[start:start + chunk_rows], numbered[start:start + chunk_rows]
        validated = validate_rows(part, numbers, columns, identifier="email", tz=UTC,
                                  now=1_800_000_000.0, clock_skew_s=300)
        assert sorted([e.row for e in validated.events] + [r for r, _, _ in validated.errors]) == numbers
        outcome = core.assemble(spec, validated, part, numbers, {}, rules.NO_CAMPAIGNS, 1_800_000_000.0, 300)
        # nobody exists yet: every event is kept, and asks for its person to be created, once a person
        assert len(outcome.outcomes) == len(validated.events) == len(outcome.ends)
        assert [key for key, _ in outcome.create] == list(dict.fromkeys(e.person_key for e in validated.events))
        assert len(outcome.keys) == 10 * len(outcome.outcomes)
        assert outcome.bodies.count(b"\n") == max(len(outcome.outcomes) - 1, 0)
        # each event's JSON ends where commit.lua is told it does
        assert [len(b) for b in outcome.bodies.split(b"\n")] == [
            end - start for start, end in zip([0] + [e + 1 for e in outcome.ends[:-1]], outcome.ends)] or \
            not outcome.ends
        errors += len(outcome.errors)
        for event in validated.events:
            key = dedupe_key(event)
            if key is not None and key in seen:
                duplicates += 1
            else:
                imported += 1
                if key is not None:
                    seen.add(key)
    assert imported + duplicates + errors == len(rows)


PEOPLE_ROW = st.tuples(st.sampled_from(["", "c1", "c2"]), EMAILS, TIMES, st.sampled_from(["", "true", "no", "maybe"]),
                       CELL).map(list)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.one_of(PEOPLE_ROW, PEOPLE_ROW.map(lambda r: r[:2])), max_size=40),
       clear=st.booleans())
def test_every_people_row_counted_once(rows, clear):
    columns = plan_people_columns(["id", "email", "created_at", "unsubscribed", "plan"])
    numbers = list(range(2, 2 + len(rows)))
    out = validate_people(rows, numbers, columns, tz=UTC, clear_empty=clear)
    assert sorted([r.row for r in out.rows] + [r for r, _, _ in out.errors]) == numbers
