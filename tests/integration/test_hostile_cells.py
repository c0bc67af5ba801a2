"""Errors files are opened in spreadsheets: every cell a spreadsheet would run is neutralized,
numbers are kept, and a corrected errors file imports exactly what the original rows would have."""
from __future__ import annotations

import csv
import io
from datetime import UTC

from worker.events.dialects import plan_columns
from worker.events.rows import validate_rows

from .helpers import run_import

HOSTILE = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2+3", "=HYPERLINK(\"http://evil.example\",\"x\")",
           "\t=1+1", "\r=1+1", "\t@SUM(A1)"]
NUMBERS = ["-12.5", "-3", "+7", "-1e5", "-0.5"]
PLAIN = ["a=b", "plain text", "50%"]
# A leading apostrophe is the spreadsheet's text marker: read without it, written back with it.
MARKED = ["'=literal", "'+44 20 7946 0000", "''kept one", "'7985351721238"]


def _file(cells: list[str], time: str) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["email", "event_name", "time", "note"])
    for n, cell in enumerate(cells):
        writer.writerow([f"p{n}@example.com", "Ordered", time, cell])
    return out.getvalue()


def test_hostile_cells_neutralized_numbers_kept_and_round_trip(store, workers, tmp_path):
    cells = HOSTILE + NUMBERS + PLAIN + MARKED
    original = tmp_path / "hostile.csv"
    original.write_text(_file(cells, "yesterday"), newline="")
    report = run_import(original, create_people=True)
    assert report["errors"] == len(cells) and report["imported"] == 0  # every row: invalid_time

    text = "".join(report["_handle"].problems_csv("errors"))
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    notes = {int(r["_row"]): r["note"] for r in rows}
    for n, cell in enumerate(cells):
        written = notes[n + 2]
        if cell in HOSTILE:
            assert written == "'" + cell.strip(), (cell, written)  # a spreadsheet shows it as text
        elif cell in MARKED:
            assert written == {"'7985351721238": "7985351721238"}.get(cell, cell), (cell, written)
        else:
            assert written == cell, (cell, written)  # numbers and plain text untouched
    assert not any(r["_errors"].startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows)

    fixed = tmp_path / "errors-fixed.csv"
    fixed.write_text(text.replace("yesterday", "2024-01-02T00:00:00Z"), encoding="utf-8", newline="")
    again = run_import(fixed, create_people=True)
    assert again["status"] == "completed" and again["imported"] == len(cells)

    # What the original rows, once corrected, import when read directly: the round trip must equal it.
    corrected = list(csv.reader(io.StringIO(_file(cells, "2024-01-02T00:00:00Z"), newline="")))
    direct = validate_rows(corrected[1:], list(range(2, 2 + len(cells))), plan_columns(corrected[0]),
                           identifier="email", tz=UTC, now=1_800_000_000.0, clock_skew_s=300)
    expected = {e.person: e.data for e in direct.events}
    imported = {e["person"]["email"]: e["data"] for e in store.events.read(again["import_id"])}
    assert imported == expected and len(imported) == len(cells)
    assert expected["p16@example.com"] == {"note": "=literal"} and expected["p18@example.com"] == {"note": "'kept one"}

    # A user deletes the _row and _errors columns before importing again: the same events.
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff").replace("yesterday", "2024-01-02T00:00:00Z"),
                                        newline="")))
    trimmed = tmp_path / "errors-trimmed.csv"
    with trimmed.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(row[:-2] for row in table)
    store.r.delete(*store.r.keys("bf:dd:*"))  # the same events again: forget they were imported
    third = run_import(trimmed, create_people=True)
    assert third["imported"] == len(cells)
    assert {e["person"]["email"]: e["data"] for e in store.events.read(third["import_id"])} == expected
