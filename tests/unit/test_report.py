import csv
import io

from worker.ops.report import build_report, escape_cell, problems_csv


def test_dangerous_cells_are_escaped_and_numbers_kept():
    for cell in ("=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2+3", "\tx", "\rx", "=1"):
        assert escape_cell(cell) == "'" + cell
    for cell in ("-12.5", "+3", "-1e5", "plain", "", "a=b"):
        assert escape_cell(cell) == cell


def test_problems_csv_has_bom_original_columns_row_and_errors():
    problems = [
        {"row": 9, "cells": ["b@x.co", "=HYPERLINK()", "2", "old"], "problems": ["invalid_time: bad"]},
        {"row": 3, "cells": ["a@x.co", "-12.5"], "problems": ["missing_event_name: no", "x: y"]},
    ]
    text = "".join(problems_csv(["email", "amount", "_row", "_errors"], [2, 3], problems, "errors"))
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == ["email", "amount", "_row", "_errors"]
    assert rows[1] == ["a@x.co", "-12.5", "3", "missing_event_name: no; x: y"]
    assert rows[2] == ["b@x.co", "'=HYPERLINK()", "9", "invalid_time: bad"]


def test_report_status_and_counts():
    state = {"rows": "10", "imported": "7", "duplicates": "1", "errors": "2", "trig_scheduled": "3",
             "created_ms": "1000", "last_commit_ms": "3000"}
    report = build_report(state, {"import_id": "x"})
    assert report["status"] == "completed_with_errors"
    assert (report["rows"], report["imported"], report["duplicates"], report["errors"]) == (10, 7, 1, 2)
    assert report["triggers"]["scheduled"] == 3 and report["rows_per_second"] == 5
    assert build_report({"rows": "1", "imported": "1"}, {})["status"] == "completed"
    assert build_report({"failure": "bad"}, {})["status"] == "failed"
