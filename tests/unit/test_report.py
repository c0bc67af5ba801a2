import csv
import io

import pytest

from worker.cells import clean_cell, escape_cell
from worker.ops.report import build_report, problems_csv


def test_dangerous_cells_are_escaped_and_numbers_kept():
    for cell in ("=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2+3", "=1"):
        assert escape_cell(cell) == "'" + cell
    assert escape_cell("''twice") == "''twice" and escape_cell("'once") == "once"  # one apostrophe is a marker
    for cell in ("-12.5", "+3", "-1e5", "plain", "", "a=b"):
        assert escape_cell(cell) == cell
    assert escape_cell("\t=1") == "'=1"  # what the cell is read as, escaped: the tab was trimmed


@pytest.mark.parametrize("value", ["=1+2", "'=literal", "+44 20 7946 0958", "'+44 20 7946 0000", "@ann", "''x",
                                   "'7985351721238", "-12.5", "plain", "a'b", "'"])
def test_the_escape_reverses_exactly_whatever_the_cell(value):
    """Reading what was written gives what was read: with or without the _row/_errors columns."""
    read = clean_cell(value)
    assert clean_cell(escape_cell(value)) == read


def test_problems_csv_has_bom_original_columns_row_and_errors():
    problems = [
        {"row": 9, "cells": ["b@x.co", "=HYPERLINK()", "2", "old"], "problems": ["invalid_time: bad"]},
        {"row": 3, "cells": ["a@x.co", "-12.5"], "problems": ["missing_event_name: no", "x: y"]},
    ]
    text = "".join(problems_csv(["email", "amount", "_row", "_errors"], [2, 3], [problems], "errors"))
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


def test_problems_csv_keeps_extra_cells_uses_the_delimiter_and_escapes_the_header():
    problems = [{"row": 2, "cells": ["a@x.co", "Main St", " 5", "Springfield"], "problems": ["too_many_cells: x"]},
                {"row": 3, "cells": ["b@x.co"], "problems": ["y: z"]}]
    text = "".join(problems_csv(["email", "=HYPERLINK(1)"], [], [problems], "errors", delimiter=";", width=4))
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    assert rows[0] == ["email", "'=HYPERLINK(1)", "", "", "_row", "_errors"]
    assert rows[1] == ["a@x.co", "Main St", "5", "Springfield", "2", "too_many_cells: x"]
    assert rows[2] == ["b@x.co", "", "", "", "3", "y: z"]


def test_problems_csv_comes_out_in_row_order_run_by_run():
    runs = [[{"row": 5, "cells": [], "problems": []}, {"row": 2, "cells": [], "problems": []}],
            [{"row": 9, "cells": [], "problems": []}, {"row": 7, "cells": [], "problems": []}]]
    rows = list(csv.reader(io.StringIO("".join(problems_csv(["a"], [], runs, "errors"))[1:])))
    assert [r[1] for r in rows[1:]] == ["2", "5", "7", "9"]


def test_a_retry_and_its_original_combine_into_one_outcome():
    from worker.ops.report import combine

    original = {"import_id": "a", "rows": 100, "imported": 80, "duplicates": 10, "errors": 10}
    # 6 of the 10 failed rows sent again, 5 now imported: 4 never retried stay errors, 1 still fails
    first = combine(original, {"import_id": "b", "rows": 6, "imported": 5, "duplicates": 0, "errors": 1})
    assert first == {"import_ids": ["a", "b"], "status": "completed_with_errors", "rows": 100, "imported": 85,
                     "duplicates": 10, "errors": 5}
    # a retry of the retry: the remaining 5, one of them now a duplicate
    second = combine({**original, "combined": first},
                     {"import_id": "c", "rows": 5, "imported": 4, "duplicates": 1, "errors": 0})
    assert second["import_ids"] == ["a", "b", "c"] and second["status"] == "completed"
    assert (second["rows"], second["imported"], second["duplicates"], second["errors"]) == (100, 89, 11, 0)
    # rows added to the corrected file count as rows of their own
    grown = combine(original, {"import_id": "d", "rows": 12, "imported": 12, "duplicates": 0, "errors": 0})
    assert (grown["rows"], grown["imported"], grown["errors"]) == (102, 92, 0)
    assert grown["rows"] == grown["imported"] + grown["duplicates"] + grown["errors"]


def test_a_retry_of_the_whole_corrected_file_counts_each_row_once():
    from worker.ops.report import combine

    original = {"import_id": "a", "rows": 100, "imported": 80, "duplicates": 10, "errors": 10}
    # the whole file again, its 10 bad rows corrected: the 90 rows seen before are duplicates now
    whole = combine(original, {"import_id": "b", "rows": 100, "imported": 10, "duplicates": 90, "errors": 0})
    assert (whole["rows"], whole["imported"], whole["duplicates"], whole["errors"], whole["status"]) == \
        (100, 90, 10, 0, "completed")
    # two still fail, one corrected row is a duplicate itself, and three rows were added at the end
    grown = combine(original, {"import_id": "c", "rows": 103, "imported": 10, "duplicates": 91, "errors": 2})
    assert (grown["rows"], grown["imported"], grown["duplicates"], grown["errors"]) == (103, 90, 11, 2)
    assert grown["rows"] == grown["imported"] + grown["duplicates"] + grown["errors"]
