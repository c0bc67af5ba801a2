from datetime import UTC

from worker.cells import is_email
from worker.events.dialects import plan_columns
from worker.events.plain import validate_chunk
from worker.events.rows import dedupe_key, validate_rows

NOW = 1_800_000_000.0
VERO = plan_columns(["email", "event_name", "time", "event_id", "item", "recipient"])


def run(rows, cols=VERO, identifier="email", first=2):
    """validate_rows's outcome, checked equal to the column-at-a-time path's (what a worker runs)."""
    numbers = list(range(first, first + len(rows)))
    options = dict(identifier=identifier, tz=UTC, now=NOW, clock_skew_s=300)
    outcome = validate_rows(rows, numbers, cols, **options)
    assert validate_chunk(rows, numbers, cols, **options) == outcome
    return outcome


def codes(outcome):
    return {row: [p.code for p in problems] for row, _, problems in outcome.errors}


def test_valid_row_becomes_an_event_with_trimmed_values():
    out = run([[" Ada@Example.com ", " Completes checkout ", "2022-01-02 13:05+10", "", " shirt ", ""]])
    [event] = out.events
    assert event.person == "Ada@Example.com" and event.person_key == "ada@example.com"
    assert event.name == "Completes checkout" and event.data == {"item": "shirt"}
    assert event.ts == 1641092700.0 and event.event_id is None and event.row == 2


def test_each_problem_names_row_column_and_code():
    out = run([
        ["", "x", "", "", "", ""],
        ["bad", "x", "", "", "", ""],
        ["a@b.co", "", "", "", "", ""],
        ["a@b.co", "x", "soon", "", "", ""],
        ["a@b.co", "x", "", "", "", "not-an-email"],
        ["a@b.co", "x", "", "", "", "", "extra"],
    ])
    assert codes(out) == {2: ["missing_person"], 3: ["invalid_email"], 4: ["missing_event_name"],
                          5: ["invalid_time"], 6: ["invalid_email"], 7: ["too_many_cells"]}
    problem = out.errors[3][2][0]
    assert problem.row == 5 and problem.column == "time" and "soon" in problem.text()
    assert out.errors[4][2][0].column == "recipient"
    assert not out.events


def test_several_problems_in_one_row_are_all_reported():
    out = run([["", "", "never", "", "", ""]])
    assert codes(out) == {2: ["missing_person", "missing_event_name", "invalid_time"]}


def test_short_rows_are_padded_and_empty_trailing_cells_ignored():
    out = run([["a@b.co", "x"], ["a@b.co", "x", "", "", "", "", ""]])
    assert len(out.events) == 2 and not out.errors


def test_future_time_is_a_warning_not_an_error():
    out = run([["a@b.co", "x", str(int(NOW + 86_400)), "", "", ""]])
    assert len(out.events) == 1
    [(row, _, [problem])] = out.warnings
    assert row == 2 and problem.code == "future_time"


def test_id_identifier_accepts_any_value():
    cols = plan_columns(["_cio_name", "_cio_customer_id"])
    out = run([["purchase", "cust 1"]], cols=cols, identifier="id")
    assert out.events[0].person_key == "cust 1"


def test_cells_escaped_by_our_errors_file_are_restored():
    cols = plan_columns(["email", "event_name", "formula", "_row", "_errors"])
    out = run([["a@b.co", "x", "'=1+2", "2", "invalid"]], cols=cols)
    assert out.events[0].data == {"formula": "=1+2"}


def test_dedupe_keys():
    out = run([
        ["a@b.co", "x", "2022-01-01T00:00:00Z", "", "1", ""],
        ["A@B.CO", "x", "1640995200", "", "1", ""],      # same event: same person, name, time, data
        ["a@b.co", "x", "2022-01-01T00:00:00Z", "", "2", ""],
        ["a@b.co", "x", "", "", "1", ""],                # no time: cannot be named
        ["a@b.co", "x", "", "E-1", "1", ""],
        ["z@b.co", "y", "", "E-1", "9", ""],             # the event id alone names it
    ])
    keys = [dedupe_key(e) for e in out.events]
    assert keys[0] == keys[1] != keys[2]
    assert keys[3] is None
    assert keys[4] == keys[5] and len(keys[4]) == 10


def test_is_email():
    assert is_email("tyrion.lannister@casterlyrock.com")
    for bad in ("a@b", "a b@c.com", "a@b.com, c@d.com", "@b.com", "a@@b.com"):
        assert not is_email(bad)
